#pragma once
// Internal to core/keys: how the keystore touches the file system. Every file is opened without
// blocking and checked with fstat (regular file, owner, mode) before a byte is read; directories
// are listed, never swept; only tokctl's own temp files of dead processes are ever removed.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/jose/jwe.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::keys::detail {

inline constexpr const char* k_manifest = "keystore.json";
inline constexpr const char* k_pairwise_secret_file = "ppid.secret";
/// Size of the pairwise-subject secret: 32 random bytes, exactly.
inline constexpr std::size_t k_pairwise_secret_bytes = 32;
inline constexpr int k_format = 1;

/// How a keystore file must look: `what` names it in messages ("key file"), `forbidden` are the
/// mode bits that refuse it, `fix` starts the hint ("chmod 600").
struct FileRule {
  const char* what;
  mode_t forbidden;
  const char* fix;
};

inline constexpr FileRule k_manifest_rule{"keystore manifest", 022, "chmod 600"};
inline constexpr FileRule k_key_rule{"key file", 077, "chmod 600"};
inline constexpr FileRule k_secret_rule{"pairwise-subject secret", 077, "chmod 600"};
inline constexpr FileRule k_dir_rule{"keystore directory", 022, "chmod 700"};
inline constexpr FileRule k_keys_dir_rule{"keys directory", 077, "chmod 700"};

/// Reads `path` (at most 1 MiB) after checking, on the open descriptor, that it is a regular file
/// owned by the caller or root and has none of `rule.forbidden`. Opened with O_NONBLOCK, so a FIFO
/// or device is refused, not waited on. Every failure is ErrorCode::keystore with a hint; a
/// dangling symlink and a symlink loop are named as such. The content is never echoed.
Result<std::string> read_keystore_file(const std::string& path, const FileRule& rule);

/// Checks that `path` is a directory owned by the caller or root with none of `rule.forbidden`.
Result<void> check_directory(const std::string& path, const FileRule& rule);

/// Names in `dir` (not "." and ".."), sorted; empty when it cannot be listed (temp-file sweeps,
/// where nothing is lost by not seeing a name).
std::vector<std::string> list_dir(const std::string& dir);

/// Files under DIR/keys/ that are not temp files of an interrupted write, sorted; none when keys/
/// does not exist. A keys/ that exists but cannot be listed (no read permission, not a directory)
/// is ErrorCode::keystore: an unlisted key file must never count as absent.
Result<std::vector<std::string>> key_files(const std::string& dir);

/// For a key brought into the keystore for JWE key management `alg`: its type and curve fit (as
/// check_fits_entry requires of every stored key) and its size is one `keys add` would make (RSA
/// 2048 to 16384 bits; AES key wrap 16 or 32 bytes; dir 16, 32 or 64). ErrorCode::usage.
Result<void> check_new_encryption_key(jose::KeyMgmtAlg alg, const jose::Jwk& key);

/// Writes an empty manifest (under the lock) when DIR has neither keystore.json (not even a
/// dangling link) nor key files: the only case in which a keystore counts as new.
Result<void> initialise_if_empty(const std::string& dir);

/// True for "<base>.tmp.<pid>.<digits>" as write_file_atomic names its temp files, where base is
/// keystore.json or a keystore key file name; `pid` receives the writer's process id.
bool is_temp_name(std::string_view name, pid_t* pid);

/// Removes temp files (is_temp_name) of processes that no longer run from the keystore directory
/// and keys/. Call with the keystore lock held.
void remove_stale_temp_files(const std::string& dir);

/// DIR/ppid.secret, checked: a regular file of the caller's (or root's), not open to group or others,
/// exactly k_pairwise_secret_bytes long, and with the SHA-256 `record` holds (when it holds one).
/// nullopt only when the file does not exist and nothing records it. Everything else, a missing file
/// the manifest records included, is ErrorCode::keystore with a recovery hint.
Result<std::optional<std::string>> read_pairwise_secret(const std::string& dir, const std::optional<SecretRecord>& record);

/// Refuses a manifest that is a symbolic link before a writer replaces it (a rename would replace
/// the link and leave its target stale): ErrorCode::keystore with a hint.
Result<void> refuse_symlinked_manifest(const std::string& dir);

/// Base64url SHA-256 of `data`.
std::string sha256_b64url(std::string_view data);

/// The manifest as stored (pretty JSON, one trailing newline).
std::string manifest_text(const Manifest& m);

/// The manifest from its JSON text; every member is type-checked (ErrorCode::keystore, never an
/// exception). `path` prefixes the messages.
Result<Manifest> parse_manifest(std::string_view text, const std::string& path);

}  // namespace tokctl::keys::detail
