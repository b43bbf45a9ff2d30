#pragma once
// Private to core/jose: RAII aliases for OpenSSL handles, declared once, digests fetched once,
// and error-queue draining. Other modules use the JOSE API (tokctl/jose/digest.hpp for hashes).

#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <tokctl/util/error.hpp>

namespace tokctl::ossl {

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using EvpMdPtr = std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)>;
using EvpMacPtr = std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)>;
using EvpMacCtxPtr = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free_all)>;
using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using BnCtxPtr = std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;

inline EvpPkeyPtr make(EVP_PKEY* p) { return {p, &EVP_PKEY_free}; }
inline EvpPkeyCtxPtr make(EVP_PKEY_CTX* p) { return {p, &EVP_PKEY_CTX_free}; }
inline EvpMdCtxPtr make(EVP_MD_CTX* p) { return {p, &EVP_MD_CTX_free}; }
inline EvpMacCtxPtr make(EVP_MAC_CTX* p) { return {p, &EVP_MAC_CTX_free}; }
inline EvpCipherCtxPtr make(EVP_CIPHER_CTX* p) { return {p, &EVP_CIPHER_CTX_free}; }
inline BioPtr make(BIO* p) { return {p, &BIO_free_all}; }
inline BnPtr make(BIGNUM* p) { return {p, &BN_free}; }
inline EcdsaSigPtr make(ECDSA_SIG* p) { return {p, &ECDSA_SIG_free}; }
inline X509Ptr make(X509* p) { return {p, &X509_free}; }
inline ParamBldPtr make(OSSL_PARAM_BLD* p) { return {p, &OSSL_PARAM_BLD_free}; }
inline ParamPtr make(OSSL_PARAM* p) { return {p, &OSSL_PARAM_free}; }

/// "SHA256", "SHA384" or "SHA512" fetched once per process (an explicit fetch avoids a provider
/// lookup per operation: OpenSSL 3 lock contention under threads); null for other names.
const EVP_MD* fetched_md(const char* name);
/// The HMAC EVP_MAC, fetched once per process.
EVP_MAC* fetched_hmac();

/// Empties this thread's OpenSSL error queue and returns its entries joined by "; " (may be empty).
std::string drain_errors();

/// An Error whose message is `what` followed by the drained OpenSSL error queue.
std::unexpected<Error> fail_ossl(ErrorCode code, std::string what);

/// Discards this thread's OpenSSL error queue (after an expected failure).
void clear_errors();

}  // namespace tokctl::ossl
