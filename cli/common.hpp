#pragma once
// Shared CLI state and helpers: global flags, the clock, input reading, error reporting.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace CLI {
class App;
}

namespace tokctl::cli {

struct GlobalOptions {
  std::string output = "text";  ///< text | json
  std::string now;              ///< --now as given
  bool no_color = false;
  bool quiet = false;
  std::string keystore;         ///< --keystore DIR
  std::string passphrase_file;  ///< --passphrase-file FILE
  std::string config;           ///< --config FILE
};

GlobalOptions& globals();
bool json_output();

/// The clock for this run: --now (parsed once, relative values against the real time) or the system.
/// Fails with ErrorCode::usage on a bad --now.
Result<const Clock*> clock();

/// The passphrase for keys at rest (and PBES2): --passphrase-file, else $TOKCTL_PASSPHRASE, else none.
/// A trailing newline in the file is not part of it.
Result<std::optional<std::string>> passphrase();

/// The keystore directory: --keystore, $TOKCTL_KEYSTORE, $XDG_DATA_HOME/tokctl, ~/.local/share/tokctl.
std::string keystore_dir();

/// Opens the keystore (`create` for writers): --keystore, $TOKCTL_KEYSTORE, the policy's keystore,
/// then the XDG default.
Result<keys::Keystore> open_keystore(bool create);

/// Key file contents as plain key material: a passphrase-protected key (a compact PBES2 JWE, as
/// written by `keys generate --passphrase-file`) is decrypted; without the passphrase that is
/// ErrorCode::keystore with a hint. Other contents are returned unchanged.
Result<std::string> unlock_key_material(std::string content, const std::string& name);

/// The policy (--config, $TOKCTL_CONFIG, ./tokctl.yaml, else defaults), loaded once.
Result<const tokens::Policy*> policy();

/// The token service on the keystore, the policy and the token store.
Result<std::unique_ptr<tokens::TokenService>> open_service();

/// Registers a subcommand action: run when `sub` was the subcommand given.
void on_run(CLI::App* sub, std::function<int()> action);
/// The action of the subcommand that was parsed, or nullptr.
std::function<int()> selected_action(CLI::App& app);

/// Prints "tokctl: error: <message>" and an optional "hint: ..." on stderr; returns the exit code.
int report(const Error& error);

/// Reads a token/payload/key argument: "-" (or empty) means stdin. `trim_ws` strips surrounding
/// whitespace (tokens, keys), not for payloads.
Result<std::string> read_arg(const std::string& value, bool trim_ws);

/// A token argument: the token itself, or "-" (or empty) for stdin; whitespace trimmed.
Result<std::string> read_token(const std::string& value);

/// Adds "Examples:" to a subcommand's help.
void examples(CLI::App* sub, const std::vector<std::string>& lines);

/// Builds the whole command tree (used by main and by completion/spec generation).
void build_app(CLI::App& app);

}  // namespace tokctl::cli
