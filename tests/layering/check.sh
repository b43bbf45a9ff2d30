#!/usr/bin/env bash
# Builds the layering probes (tests/layering/CMakeLists.txt) one after another in BUILD_DIR: the
# allowed one must compile, every upward include must fail with "No such file" for its header.
set -uo pipefail
build=$1
fails=0
probe() {
  local target=$1 want=$2 header=${3:-} out rc
  out=$(cmake --build "$build" --target "$target" 2>&1); rc=$?
  if [[ $want == ok && $rc -ne 0 ]]; then
    echo "FAIL: $target should build:"; echo "$out" | tail -20; fails=$((fails + 1))
  # GCC: "HEADER: No such file or directory"; clang: "'HEADER' file not found".
  elif [[ $want == refused ]] && { [[ $rc -eq 0 ]] || ! grep -qF -e "$header: No such file" -e "'$header' file not found" <<<"$out"; }; then
    echo "FAIL: $target should fail to find $header (exit $rc):"; echo "$out" | tail -20; fails=$((fails + 1))
  else
    echo "ok: $target ($want)"
  fi
}
probe probe_allowed ok
probe probe_util_includes_jose refused tokctl/jose/jwk.hpp
probe probe_jose_includes_keys refused tokctl/keys/keystore.hpp
probe probe_keys_includes_tokens refused tokctl/tokens/service.hpp
probe probe_keys_includes_ossl refused tokctl/jose/ossl.hpp
probe probe_tokens_includes_server refused tokctl/server/http_server.hpp
probe probe_remote_includes_keys refused tokctl/keys/keystore.hpp
probe probe_tokens_includes_remote refused tokctl/remote/oauth.hpp
exit $((fails > 0))
