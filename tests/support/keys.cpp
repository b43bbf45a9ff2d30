// Fixed test keys. Generated once (not at test time) with:
//   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048      (rsa2048, rsa2048b; 1024 for rsa1024)
//   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256    (p256, p256b; P-384, P-521)
//   openssl genpkey -algorithm ED25519 | ED448 | X25519
//   openssl pkey -pubout                                              (the SPKI forms)
//   tokctl keys convert KEY.pem --to jwk; tokctl keys generate --alg HS256|HS384|HS512
// with kid/alg/use removed from the JWKs.

#include "support/keys.hpp"

#include <map>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tokctl::test {
namespace {

struct KeyText {
  std::string_view name;
  std::string_view jwk;
  std::string_view private_pem;
  std::string_view public_pem;
};

// clang-format off
constexpr KeyText k_keys[] = {
    {"rsa2048",
     R"json({
  "kty": "RSA",
  "n": "jk_OkSl-rYxVpqMeddct0JBL5MXc84yyYUtL7T3V9sBhXpNTT4r53mV_dk3ocvFSxhmldmJQ5viWXNaiFFLtc4PC_54JZYKPs-0EBHpifmoGdsiQaY06DQx3pW4bTi5iXseRbtSxAqCgbF6ORrc7gj-8BEXHTWuz9wzAr2oRxYQiP9NdvTnnoLo-oEMVQZ16rOTbNhmR0XgjARW4qjUJgEUtGn3w6VGdMJM_OCxGQNyk8crklZYuWgquzDTONk89d8A-DhAV5-qUPYfLEExHg7aDlCAEPmyIezqofZX5Ex03CM1w2Ofnrx1OnhKN9wWEOp9ukHerJpc6JjRAE6vPvQ",
  "e": "AQAB",
  "d": "Giw5TF86Sga2NehoELobVfFD0_ZD1ZL5t4UWmLI3qKLnBXLI7qcbnzhBgeuAJauWUpKi6KvaPzBWzwo2UtCRlR4Vfdd92OpzLV8Yzw4HEULEn5HxZUgw9fdmBcnDQdSsCMxhReXeDCKofmXBeuX2DtVT6eE_b1Cwj24L_fbe_9kwEQFItRdb17yhxubDL_UTi-x55FwK2CnVQZ9N6__T15Xd-WBxG4alrhp4DoOj7l8CekIATAKu_fL7UUk0TbcMWvqvbKKuSd0_QG1uyncqoMAxBjlaXj8nep-LkxXaXNsJjLb06vE53pzVzLcLV1plKSxrS8o_LHA3bEGLILbIzQ",
  "p": "wQXP4atOwnBUd7PAKZ19tlXHHC5-bKIW-GKxEWkHQUfRAbeU7zWQ8v-penw3ukruw5Yyzre1wtJGPWzpBCNBflS2pZEas-G5WZ24PE5Prxz8p6KeXauJzQEd2Fh5WBfVD702BIVUhTeK5ACW-tOKqTdjzrLRaC6vh9P05chj5Yc",
  "q": "vL5e8rotOQvFQlBukjUZeCd0R6rE-5f9ts-oLvf-JS1aCHEyD3Hfb77Ezu31pEeYsRiNTiFFI0gBwXX4AhWzf5ZuU37N25ZwlYPdwyL3n4-NXfvywoMi1su22_DVEDgadWtlxd_cF25nGa5Ox4cvD92gatOHJX6efKOTBz33MZs",
  "dp": "HHZ-8QgR1Ro7WmtnKrvOjdSYR8-TVPGR8Y6cDbUvHLE6YMZxb9S2Sx7oHueyUAY8rxq240SzyMa5FNW6hqGsRrS3OjLrfRsL-esH_9yMY4Yiu5V_RNDGwTQo8n4ZZqQdBvUfwgrnK73E_VoY6WPITqucTB6SQoqf16eptTiXgoE",
  "dq": "NOefsaXh-zWDa10kQTNFGlrkyxng8SzfXxjB6bh1snIN5IPmJlIi8S2l-OLWkd_HuwxIv3ev633JkDLC-8Kdd8vwzNKkXULD-AToakQo6L7SP1_Z4g_j-hVMAkZ1UoCHWhZqhpaDGMZHe_lR97e6x1W2G3uDTE07m3A2TDdgTLU",
  "qi": "NdMxXlx0EXwP31hwRYRtNPsNbyRUo3zHWWBMKfKTHUXw91L8hhgqtV68ho-RThV1zWuGO_fz3g6O8w5h9Jt7bXmmblCVzBrAVIBDFVH4yuClshCuuTKcIatA4pyHpXvsW0xCq-7cDegldWjjW50IgpGfXp0bFzna9C2GcvoUnoI"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCOT86RKX6tjFWm
ox511y3QkEvkxdzzjLJhS0vtPdX2wGFek1NPivneZX92Tehy8VLGGaV2YlDm+JZc
1qIUUu1zg8L/ngllgo+z7QQEemJ+agZ2yJBpjToNDHelbhtOLmJex5Fu1LECoKBs
Xo5GtzuCP7wERcdNa7P3DMCvahHFhCI/0129Oeeguj6gQxVBnXqs5Ns2GZHReCMB
FbiqNQmARS0affDpUZ0wkz84LEZA3KTxyuSVli5aCq7MNM42Tz13wD4OEBXn6pQ9
h8sQTEeDtoOUIAQ+bIh7Oqh9lfkTHTcIzXDY5+evHU6eEo33BYQ6n26Qd6smlzom
NEATq8+9AgMBAAECggEAGiw5TF86Sga2NehoELobVfFD0/ZD1ZL5t4UWmLI3qKLn
BXLI7qcbnzhBgeuAJauWUpKi6KvaPzBWzwo2UtCRlR4Vfdd92OpzLV8Yzw4HEULE
n5HxZUgw9fdmBcnDQdSsCMxhReXeDCKofmXBeuX2DtVT6eE/b1Cwj24L/fbe/9kw
EQFItRdb17yhxubDL/UTi+x55FwK2CnVQZ9N6//T15Xd+WBxG4alrhp4DoOj7l8C
ekIATAKu/fL7UUk0TbcMWvqvbKKuSd0/QG1uyncqoMAxBjlaXj8nep+LkxXaXNsJ
jLb06vE53pzVzLcLV1plKSxrS8o/LHA3bEGLILbIzQKBgQDBBc/hq07CcFR3s8Ap
nX22VcccLn5sohb4YrERaQdBR9EBt5TvNZDy/6l6fDe6Su7DljLOt7XC0kY9bOkE
I0F+VLalkRqz4blZnbg8Tk+vHPynop5dq4nNAR3YWHlYF9UPvTYEhVSFN4rkAJb6
04qpN2POstFoLq+H0/TlyGPlhwKBgQC8vl7yui05C8VCUG6SNRl4J3RHqsT7l/22
z6gu9/4lLVoIcTIPcd9vvsTO7fWkR5ixGI1OIUUjSAHBdfgCFbN/lm5Tfs3blnCV
g93DIvefj41d+/LCgyLWy7bb8NUQOBp1a2XF39wXbmcZrk7Hhy8P3aBq04clfp58
o5MHPfcxmwKBgBx2fvEIEdUaO1prZyq7zo3UmEfPk1TxkfGOnA21LxyxOmDGcW/U
tkse6B7nslAGPK8atuNEs8jGuRTVuoahrEa0tzoy630bC/nrB//cjGOGIruVf0TQ
xsE0KPJ+GWakHQb1H8IK5yu9xP1aGOljyE6rnEwekkKKn9enqbU4l4KBAoGANOef
saXh+zWDa10kQTNFGlrkyxng8SzfXxjB6bh1snIN5IPmJlIi8S2l+OLWkd/HuwxI
v3ev633JkDLC+8Kdd8vwzNKkXULD+AToakQo6L7SP1/Z4g/j+hVMAkZ1UoCHWhZq
hpaDGMZHe/lR97e6x1W2G3uDTE07m3A2TDdgTLUCgYA10zFeXHQRfA/fWHBFhG00
+w1vJFSjfMdZYEwp8pMdRfD3UvyGGCq1XryGj5FOFXXNa4Y79/PeDo7zDmH0m3tt
eaZuUJXMGsBUgEMVUfjK4KWyEK65Mpwhq0DinIele+xbTEKr7twN6CV1aONbnQiC
kZ9enRsXOdr0LYZy+hSegg==
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjk/OkSl+rYxVpqMeddct
0JBL5MXc84yyYUtL7T3V9sBhXpNTT4r53mV/dk3ocvFSxhmldmJQ5viWXNaiFFLt
c4PC/54JZYKPs+0EBHpifmoGdsiQaY06DQx3pW4bTi5iXseRbtSxAqCgbF6ORrc7
gj+8BEXHTWuz9wzAr2oRxYQiP9NdvTnnoLo+oEMVQZ16rOTbNhmR0XgjARW4qjUJ
gEUtGn3w6VGdMJM/OCxGQNyk8crklZYuWgquzDTONk89d8A+DhAV5+qUPYfLEExH
g7aDlCAEPmyIezqofZX5Ex03CM1w2Ofnrx1OnhKN9wWEOp9ukHerJpc6JjRAE6vP
vQIDAQAB
-----END PUBLIC KEY-----
)pem"},
    {"rsa2048b",
     R"json({
  "kty": "RSA",
  "n": "xH_7tBxaMf9uzm-fLoe8b-vLEpzw-MIPhvHfTNsFu6KaeXS_xe9sPvCFN-B-I12VksJzukkbYIXo21j_9Th7CTtxWTXJF-OOpsskWhRa0NE7flmXwxY0BOqg5y-6rB_NRtJVy5qJIRVdqrphd7HjYGFBpo9BaW4ZgjdCBGZJgAAdiaIUE5Xr-YPp7EBEWGtap1YzXi0PdnPXZ9ADsk9If1fmJJg5McpMEKCXFbQbEqXkX0WZmbnhrCEWxyyhxjOaN84w8F4R1fkeuFZ2EoKkBmX8LxY3aqY9mjaNt7gz4FRB7O4gR6-vXBi17kAoDDjhXbRWtL4vGbaznc1UH5co-w",
  "e": "AQAB",
  "d": "PKIbSn_nKv9dMzEJRuPWdxiksGkiCDhlbyfqVf5NfhEWJn0qgcq3tZIlIVFRytrhQQhkimptmrKnYCvNy16yxG4Fs1ff5dGvXnNXk74tKbsuZvYBWM7cnVnC7aNyMBOeFYjotWtJfh5oKTrawYLwHPjVt64DqqMxFtezNMVVT7vu0Ao2_3FSVLzfAVb4-jP7-JVHh5rnHQKfaHQLrGXRNC6iWpFKzFROFZq9d-LUea60S57jYkQ5hb4sULdhSEUpF32T24BUeXv9yoMOUuRG9r62UNr6KGIiJ3lbPM_Adv2orsJupNbCF-FA5hYv42toQy_YacVV9Gc3grdZ0Z8W8Q",
  "p": "6wlYPCDatIHI_zb_30lLl2dHj-81uyhdN9zRg-qBX4klQv94Wvu75WMoI2_oHXsoELtupVDzutCc1jRR83Ek6-PZalhtCBe3val-EhAmj6qgfKS3MVYyI6Fwa3zPtSS_DFETLD6zyy1uqn6As0LFhFtcFjogiU2-W8rGc9bgVvE",
  "q": "1ga43SymN81q4EysqIR-eFUZkXPcGMBHA4_jMrMU1olLBLTny8JGMoxed8d95EEYxNS7vkjeGwjDqufdSE9kodM6sbrveZbaql3_p7epufJJZ-yKEJN8DQoAwXE8MaeCmsTtLwX8JtZeVT9wfRcI8RUNueEAAAwZaO8c6-5Kdqs",
  "dp": "CzX45XVTuURvh-zhq47dci1U9oKcd37nY2C_BaHL5fiutFFnNj_HqJtgMMCHu9BCCvpFvtDrrz-AG5-HQStmbXICztXE7ZvkAcHx536puDSVTxy0OEA6SATNTfM4HRXRnw7G8VdUUB6spqk-Dk7jCPsqm0zOfH4e1FYJvUDElqE",
  "dq": "LTN0PXndjPF8PezTli-NSjqm0LpIZI3PMahk0mNR5lFOn6rZPYZFLw3IMcHXC6rX4VIQaIqZJdp_AIxBhrEFzst-nOSfCO3cNpjtkm1Oki_iYulo60FKtLJFIJWaod3_zlICyaiY7Vbey2A_kJuZztikcnpbdqcXgrrlP8quvUs",
  "qi": "tl42_AmOZ6dx-MXQLcMkeU_t4Um9MqbvRkIBlKo6SNnrGZ84SPfEEFCuNxQHPHgEugu5VXy2IV34h4r-UsQ7Oa3bVbMC20n81xh1P-kGf7lqZIAxaGp58SvC_y72GX06AGX4WYpCDThETey1ZLk3aQvfFwybxu42hhmi2lrOHdA"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDEf/u0HFox/27O
b58uh7xv68sSnPD4wg+G8d9M2wW7opp5dL/F72w+8IU34H4jXZWSwnO6SRtghejb
WP/1OHsJO3FZNckX446myyRaFFrQ0Tt+WZfDFjQE6qDnL7qsH81G0lXLmokhFV2q
umF3seNgYUGmj0FpbhmCN0IEZkmAAB2JohQTlev5g+nsQERYa1qnVjNeLQ92c9dn
0AOyT0h/V+YkmDkxykwQoJcVtBsSpeRfRZmZueGsIRbHLKHGM5o3zjDwXhHV+R64
VnYSgqQGZfwvFjdqpj2aNo23uDPgVEHs7iBHr69cGLXuQCgMOOFdtFa0vi8ZtrOd
zVQflyj7AgMBAAECggEAPKIbSn/nKv9dMzEJRuPWdxiksGkiCDhlbyfqVf5NfhEW
Jn0qgcq3tZIlIVFRytrhQQhkimptmrKnYCvNy16yxG4Fs1ff5dGvXnNXk74tKbsu
ZvYBWM7cnVnC7aNyMBOeFYjotWtJfh5oKTrawYLwHPjVt64DqqMxFtezNMVVT7vu
0Ao2/3FSVLzfAVb4+jP7+JVHh5rnHQKfaHQLrGXRNC6iWpFKzFROFZq9d+LUea60
S57jYkQ5hb4sULdhSEUpF32T24BUeXv9yoMOUuRG9r62UNr6KGIiJ3lbPM/Adv2o
rsJupNbCF+FA5hYv42toQy/YacVV9Gc3grdZ0Z8W8QKBgQDrCVg8INq0gcj/Nv/f
SUuXZ0eP7zW7KF033NGD6oFfiSVC/3ha+7vlYygjb+gdeygQu26lUPO60JzWNFHz
cSTr49lqWG0IF7e9qX4SECaPqqB8pLcxVjIjoXBrfM+1JL8MURMsPrPLLW6qfoCz
QsWEW1wWOiCJTb5bysZz1uBW8QKBgQDWBrjdLKY3zWrgTKyohH54VRmRc9wYwEcD
j+MysxTWiUsEtOfLwkYyjF53x33kQRjE1Lu+SN4bCMOq591IT2Sh0zqxuu95ltqq
Xf+nt6m58kln7IoQk3wNCgDBcTwxp4KaxO0vBfwm1l5VP3B9FwjxFQ254QAADBlo
7xzr7kp2qwKBgAs1+OV1U7lEb4fs4auO3XItVPaCnHd+52NgvwWhy+X4rrRRZzY/
x6ibYDDAh7vQQgr6Rb7Q668/gBufh0ErZm1yAs7VxO2b5AHB8ed+qbg0lU8ctDhA
OkgEzU3zOB0V0Z8OxvFXVFAerKapPg5O4wj7KptMznx+HtRWCb1AxJahAoGALTN0
PXndjPF8PezTli+NSjqm0LpIZI3PMahk0mNR5lFOn6rZPYZFLw3IMcHXC6rX4VIQ
aIqZJdp/AIxBhrEFzst+nOSfCO3cNpjtkm1Oki/iYulo60FKtLJFIJWaod3/zlIC
yaiY7Vbey2A/kJuZztikcnpbdqcXgrrlP8quvUsCgYEAtl42/AmOZ6dx+MXQLcMk
eU/t4Um9MqbvRkIBlKo6SNnrGZ84SPfEEFCuNxQHPHgEugu5VXy2IV34h4r+UsQ7
Oa3bVbMC20n81xh1P+kGf7lqZIAxaGp58SvC/y72GX06AGX4WYpCDThETey1ZLk3
aQvfFwybxu42hhmi2lrOHdA=
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxH/7tBxaMf9uzm+fLoe8
b+vLEpzw+MIPhvHfTNsFu6KaeXS/xe9sPvCFN+B+I12VksJzukkbYIXo21j/9Th7
CTtxWTXJF+OOpsskWhRa0NE7flmXwxY0BOqg5y+6rB/NRtJVy5qJIRVdqrphd7Hj
YGFBpo9BaW4ZgjdCBGZJgAAdiaIUE5Xr+YPp7EBEWGtap1YzXi0PdnPXZ9ADsk9I
f1fmJJg5McpMEKCXFbQbEqXkX0WZmbnhrCEWxyyhxjOaN84w8F4R1fkeuFZ2EoKk
BmX8LxY3aqY9mjaNt7gz4FRB7O4gR6+vXBi17kAoDDjhXbRWtL4vGbaznc1UH5co
+wIDAQAB
-----END PUBLIC KEY-----
)pem"},
    {"rsa1024",
     R"json({
  "kty": "RSA",
  "n": "uNmkr_IpFSqAf_rFEzEh5dKt5hefyX_k4IBZ1sQ2LCmsYBLB4fCtboWb3uhZAropp6fVpxu5trkV-9Vlpv2FG0zj15vGcKFVlmt7cHtVtAG9rNZ8fbz1CkqH0h2q8o2mUGVCmmgLSktQNHUhHQruGfiZEwuI83Qzy6qvJNKr9Ck",
  "e": "AQAB",
  "d": "JBd6rE_f7Z4K0PIpoIGrWLA1_AMI09MA4USuRdyxpxXL7kY7TN4tPrMfp_o9xuaKU43VjXdAX4jr3evgmSZO4py8OHSUn6S-3TFe6uT7LiflB-OHICAwQhfQRjvaTsVYNyAf5NHaN6-SM4P9nOMojj2KGzd-dquUmWaVoh8KKcE",
  "p": "3pW8GYtJvBYtkbPRcGVNaKWW2vxucquDAzivQtBnMQT7dMYrSq_NNk-_82wjTmp-7hAFBUGUI63ht7uEWSiwPQ",
  "q": "1Jm1D4iclbuR0Z1xWbjhdHV6uQTofeVKnj-6-tpU86hdVdE93UbPtktgdOFfMVJcvWJjOBnLd6uBiGCv03SGXQ",
  "dp": "r_QQCOVZ-WxSw44xbzc1dRcJZL0OFmnMnFxP93JFULPOj6YkDNtiTp_Gbog6dL-s7UYOofQQRhArkZGTcuO-RQ",
  "dq": "I6XmW0Vv5BeAeuJoeD_s5ecw_ccZ6MpCucg75QYpCnYnuFUOh4TxHUMEWHTVzmJeFI9jzatdl6JVZPW5Zb57LQ",
  "qi": "SY3fXPUPpMZjMrnNd_sr1my17xvkImSj959ana5dUxaT5qv1t2d2-6OeiGrhReuMjE6Qhk5kILiUEZMPG23UDw"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALjZpK/yKRUqgH/6
xRMxIeXSreYXn8l/5OCAWdbENiwprGASweHwrW6Fm97oWQK6Kaen1acbuba5FfvV
Zab9hRtM49ebxnChVZZre3B7VbQBvazWfH289QpKh9IdqvKNplBlQppoC0pLUDR1
IR0K7hn4mRMLiPN0M8uqryTSq/QpAgMBAAECgYAkF3qsT9/tngrQ8imggatYsDX8
AwjT0wDhRK5F3LGnFcvuRjtM3i0+sx+n+j3G5opTjdWNd0BfiOvd6+CZJk7inLw4
dJSfpL7dMV7q5PsuJ+UH44cgIDBCF9BGO9pOxVg3IB/k0do3r5Izg/2c4yiOPYob
N352q5SZZpWiHwopwQJBAN6VvBmLSbwWLZGz0XBlTWilltr8bnKrgwM4r0LQZzEE
+3TGK0qvzTZPv/NsI05qfu4QBQVBlCOt4be7hFkosD0CQQDUmbUPiJyVu5HRnXFZ
uOF0dXq5BOh95UqeP7r62lTzqF1V0T3dRs+2S2B04V8xUly9YmM4Gct3q4GIYK/T
dIZdAkEAr/QQCOVZ+WxSw44xbzc1dRcJZL0OFmnMnFxP93JFULPOj6YkDNtiTp/G
bog6dL+s7UYOofQQRhArkZGTcuO+RQJAI6XmW0Vv5BeAeuJoeD/s5ecw/ccZ6MpC
ucg75QYpCnYnuFUOh4TxHUMEWHTVzmJeFI9jzatdl6JVZPW5Zb57LQJASY3fXPUP
pMZjMrnNd/sr1my17xvkImSj959ana5dUxaT5qv1t2d2+6OeiGrhReuMjE6Qhk5k
ILiUEZMPG23UDw==
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC42aSv8ikVKoB/+sUTMSHl0q3m
F5/Jf+TggFnWxDYsKaxgEsHh8K1uhZve6FkCuimnp9WnG7m2uRX71WWm/YUbTOPX
m8ZwoVWWa3twe1W0Ab2s1nx9vPUKSofSHaryjaZQZUKaaAtKS1A0dSEdCu4Z+JkT
C4jzdDPLqq8k0qv0KQIDAQAB
-----END PUBLIC KEY-----
)pem"},
    {"p256",
     R"json({
  "kty": "EC",
  "crv": "P-256",
  "x": "yXhRd90TPnyi3-onRZMhL0zfvPVGMi03dLvDbjA14YE",
  "y": "kFuGZohdCmaYEBY5H-pdW5rL7bJqmmhazNBlBQrH8hA",
  "d": "I8V22qF8CvPVp6Q5UacUZyMKYG3OFSm7fLAKja4vMGE"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgI8V22qF8CvPVp6Q5
UacUZyMKYG3OFSm7fLAKja4vMGGhRANCAATJeFF33RM+fKLf6idFkyEvTN+89UYy
LTd0u8NuMDXhgZBbhmaIXQpmmBAWOR/qXVuay+2yappoWszQZQUKx/IQ
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyXhRd90TPnyi3+onRZMhL0zfvPVG
Mi03dLvDbjA14YGQW4ZmiF0KZpgQFjkf6l1bmsvtsmqaaFrM0GUFCsfyEA==
-----END PUBLIC KEY-----
)pem"},
    {"p256b",
     R"json({
  "kty": "EC",
  "crv": "P-256",
  "x": "UvkmYT3WPmGqrKWKh8kXMBVOOX8Nfsnmd9Q7cJrSmgU",
  "y": "Deu4Ee5wG_7iGJ_HCG8Gzfux5V6s3NiSa6kOYzI7xZs",
  "d": "wT00NIQEZleY8RmxF6WcLBVi-3NbsFeqDWwFJ3_4zrg"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwT00NIQEZleY8Rmx
F6WcLBVi+3NbsFeqDWwFJ3/4zrihRANCAARS+SZhPdY+YaqspYqHyRcwFU45fw1+
yeZ31DtwmtKaBQ3ruBHucBv+4hifxwhvBs37seVerNzYkmupDmMyO8Wb
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEUvkmYT3WPmGqrKWKh8kXMBVOOX8N
fsnmd9Q7cJrSmgUN67gR7nAb/uIYn8cIbwbN+7HlXqzc2JJrqQ5jMjvFmw==
-----END PUBLIC KEY-----
)pem"},
    {"p384",
     R"json({
  "kty": "EC",
  "crv": "P-384",
  "x": "BTD0hGGU35_NtjQi_wj6hVWFCCKO1VdD23CH-_wo9pAcX8aIYkv-5bYrjh_F-vAU",
  "y": "4gg1vCL5NQ0YuMkUz9bYHwkQW5WOxNJ8A7zP6ACQRdV5yVrD64WxBsF4FXRLEubi",
  "d": "QIToYslccEnZ_Shw6H3axHq5w7zKD8r3uYIu9lAc7cvinvZAxn9CmGf1gTJ8KEOe"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBAhOhiyVxwSdn9KHDo
fdrEernDvMoPyve5gi72UBzty+Ke9kDGf0KYZ/WBMnwoQ56hZANiAAQFMPSEYZTf
n822NCL/CPqFVYUIIo7VV0PbcIf7/Cj2kBxfxohiS/7ltiuOH8X68BTiCDW8Ivk1
DRi4yRTP1tgfCRBblY7E0nwDvM/oAJBF1XnJWsPrhbEGwXgVdEsS5uI=
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEBTD0hGGU35/NtjQi/wj6hVWFCCKO1VdD
23CH+/wo9pAcX8aIYkv+5bYrjh/F+vAU4gg1vCL5NQ0YuMkUz9bYHwkQW5WOxNJ8
A7zP6ACQRdV5yVrD64WxBsF4FXRLEubi
-----END PUBLIC KEY-----
)pem"},
    {"p521",
     R"json({
  "kty": "EC",
  "crv": "P-521",
  "x": "ANY9o6p2TOHYj_pzEdcrKluT4LW7s4O7-iAP71evgPF2Rjeh5iKxfBysRjhvL3R6MUKx_9xeGLGXK_rmF1Xr8365",
  "y": "ACWOEpJhaJ_HYHF9UA7yCvm_1LftM_XeSqLdJGBFQni2ZBFNTPWW_BfsmXL0nhm0-R2ceExu0z-NladVfg2eG1Ax",
  "d": "AMPSZGj2iwgYl-aqfY1JFwIfYyL-RkCR5FPwn8tRpZH6SEWo6eVwbeNa5OMEtEamc1JWXtV8tVV6rr0gk8NqNJGg"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIAw9JkaPaLCBiX5qp9
jUkXAh9jIv5GQJHkU/Cfy1GlkfpIRajp5XBt41rk4wS0RqZzUlZe1Xy1VXquvSCT
w2o0kaChgYkDgYYABADWPaOqdkzh2I/6cxHXKypbk+C1u7ODu/ogD+9Xr4DxdkY3
oeYisXwcrEY4by90ejFCsf/cXhixlyv65hdV6/N+uQAljhKSYWifx2BxfVAO8gr5
v9S37TP13kqi3SRgRUJ4tmQRTUz1lvwX7Jly9J4ZtPkdnHhMbtM/jZWnVX4NnhtQ
MQ==
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQA1j2jqnZM4diP+nMR1ysqW5Pgtbuz
g7v6IA/vV6+A8XZGN6HmIrF8HKxGOG8vdHoxQrH/3F4YsZcr+uYXVevzfrkAJY4S
kmFon8dgcX1QDvIK+b/Ut+0z9d5Kot0kYEVCeLZkEU1M9Zb8F+yZcvSeGbT5HZx4
TG7TP42Vp1V+DZ4bUDE=
-----END PUBLIC KEY-----
)pem"},
    {"ed25519",
     R"json({
  "kty": "OKP",
  "crv": "Ed25519",
  "x": "1cMMhpqifQAlHBVmh9L6tN8HjknCxzB79_1eakfrr-g",
  "d": "7UyTyd9X5oNeW868eBcrmfjux-tsuRCqkdeTehn9fgs"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIO1Mk8nfV+aDXlvOvHgXK5n47sfrbLkQqpHXk3oZ/X4L
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA1cMMhpqifQAlHBVmh9L6tN8HjknCxzB79/1eakfrr+g=
-----END PUBLIC KEY-----
)pem"},
    {"ed448",
     R"json({
  "kty": "OKP",
  "crv": "Ed448",
  "x": "3J8DXLpyC0sTOzemMe99A0uRvJ59vzvWXJsxWvyCg_ZWUGyyoHcCVQcuYV54VpU2s35mKbyr-8uA",
  "d": "tMyohfyRf2GhurfErHh5OOtmIuqAnxXYV-DAdjdfy88mrFMg0OUqjOGnrizMFBc0OixxalYOp3wr"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MEcCAQAwBQYDK2VxBDsEObTMqIX8kX9hobq3xKx4eTjrZiLqgJ8V2FfgwHY3X8vP
JqxTINDlKozhp64szBQXNDoscWpWDqd8Kw==
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MEMwBQYDK2VxAzoA3J8DXLpyC0sTOzemMe99A0uRvJ59vzvWXJsxWvyCg/ZWUGyy
oHcCVQcuYV54VpU2s35mKbyr+8uA
-----END PUBLIC KEY-----
)pem"},
    {"x25519",
     R"json({
  "kty": "OKP",
  "crv": "X25519",
  "x": "iRS5psxaRjz5RME7yNGzGrZsaYfrpkQW39SLViUU8nM",
  "d": "UFqU-c-HjKHXjKyyo-fuiMqpWifZX6Y1HSLCNDE3OmM"
})json",
     R"pem(-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIFBalPnPh4yh14yssqPn7ojKqVon2V+mNR0iwjQxNzpj
-----END PRIVATE KEY-----
)pem",
     R"pem(-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEAiRS5psxaRjz5RME7yNGzGrZsaYfrpkQW39SLViUU8nM=
-----END PUBLIC KEY-----
)pem"},
    {"hs256",
     R"json({
  "kty": "oct",
  "k": "CcjuitbaXSxn8zSHuDYj2-cM5aki9tXCIjbEprV_7YU"
})json",
     R"pem()pem",
     R"pem()pem"},
    {"hs384",
     R"json({
  "kty": "oct",
  "k": "MwQ-ayOqM9ERzWWPb4NlEmROEJgx96y26PF8Mo7JiKe_aIg__PE5QaR0CD7qWmBI"
})json",
     R"pem()pem",
     R"pem()pem"},
    {"hs512",
     R"json({
  "kty": "oct",
  "k": "V-RbZdCWfmxYQ87jvNwfCU_BygH-fjEOprwhLPBE4ihq1OxWL8r3qJ6cmuGregbB5lL-tafUOPmOyi8HhbPySA"
})json",
     R"pem()pem",
     R"pem()pem"},
};
// clang-format on

const KeyText& find(std::string_view name) {
  for (const auto& k : k_keys)
    if (k.name == name) return k;
  throw std::out_of_range("no test key named '" + std::string(name) + "'");
}

std::map<std::string_view, jose::Jwk> parse_all() {
  std::map<std::string_view, jose::Jwk> out;
  for (const auto& k : k_keys) {
    auto jwk = jose::Jwk::from_json(nlohmann::json::parse(k.jwk));
    if (!jwk) {
      throw std::runtime_error("test key '" + std::string(k.name) + "' does not parse: " +
                               jwk.error().message);
    }
    out.emplace(k.name, std::move(*jwk));
  }
  return out;
}

}  // namespace

const jose::Jwk& test_key(std::string_view name) {
  static const std::map<std::string_view, jose::Jwk> parsed = parse_all();
  find(name);  // throws a clear message for an unknown name
  return parsed.at(name);
}

std::string_view test_key_json(std::string_view name) { return find(name).jwk; }
std::string_view test_key_pem(std::string_view name) { return find(name).private_pem; }
std::string_view test_key_public_pem(std::string_view name) { return find(name).public_pem; }

const std::vector<std::string_view>& test_key_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const auto& k : k_keys) v.push_back(k.name);
    return v;
  }();
  return names;
}

}  // namespace tokctl::test
