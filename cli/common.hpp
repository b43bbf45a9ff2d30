#pragma once
// Shared CLI state and helpers: global flags, the clock, input reading, error reporting.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/time.hpp>

namespace CLI {
class App;
class Option;
}

namespace tokctl::cli {

/// Exit code for an internal error (an exception that escaped: a bug), as sysexits' EX_SOFTWARE.
inline constexpr int k_exit_internal = 70;

struct GlobalOptions {
  std::string output = "text";  ///< text | json
  std::string now;              ///< --now as given
  bool no_color = false;
  bool quiet = false;
  std::string keystore;         ///< --keystore DIR
  std::string passphrase_file;  ///< --passphrase-file FILE
  std::string config;           ///< --config FILE
  bool verbose = false;         ///< -v: say which policy and keystore were used (stderr)
};

/// The policy file and where its name came from ("--config", "$TOKCTL_CONFIG"); empty path: none,
/// the built-in defaults apply. ./tokctl.yaml is never picked up implicitly (trust roots are explicit).
struct ConfigChoice {
  std::string path;
  std::string from;
};
ConfigChoice config_choice();

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

/// The policy (--config, else $TOKCTL_CONFIG, else built-in defaults), loaded once.
Result<const tokens::Policy*> policy();

/// The token service on the keystore, the policy and the token store.
Result<std::unique_ptr<tokens::TokenService>> open_service();

/// Registers a subcommand action: run when `sub` was the subcommand given.
void on_run(CLI::App* sub, std::function<int()> action);
/// The action of the subcommand that was parsed, or nullptr.
std::function<int()> selected_action(CLI::App& app);

/// Prints "tokctl: error: <message>" and an optional "hint: ..." on stderr; returns the exit code.
int report(const Error& error);

/// Flushes standard output; ErrorCode::keystore (exit 4, a file that cannot be written) when any
/// write to it failed (a full disk, /dev/full, a closed descriptor). A key, token or JWKS that never
/// reached its reader must not end in exit 0, nor count as handed out.
Result<void> flush_stdout();

/// The CLI's name for a core request parameter (Error::param): "min_next_age" -> "--min-next-age".
std::string flag_for(std::string_view param);

/// A core hint completed by the CLI's spelling of its remedy (a tokctl command line), for terminal
/// and JSON output alike. `subject` is Error::subject (an alg or a path).
std::string hint_text(const std::string& hint, Remedy remedy, const std::string& subject = {});

/// A CLI-specific hint in place of the core's (which the remedy would otherwise complete).
void replace_hint(Error& error, std::string hint);

/// Reads a token/payload/key argument: "-" (or empty) means stdin. `trim_ws` strips surrounding
/// whitespace (tokens, keys), not for payloads.
Result<std::string> read_arg(const std::string& value, bool trim_ws);

/// A token as pasted: surrounding and embedded whitespace (tokens wrapped across lines) removed, and a
/// leading "Bearer " / "DPoP " / "Authorization:" dropped (case-insensitive).
std::string normalize_token(std::string_view text);

/// True when `line` may hold a token as pasted (a scheme, blanks) that normalize_token() would
/// change: it has a space, a tab or a ':'. Three memchr passes: cheap enough for every batch line.
bool pasted_token(std::string_view line);

/// A token argument: the token itself, a file holding it, or "-" (or empty) for stdin (with a prompt
/// line on stderr when stdin is a terminal); normalised with normalize_token().
Result<std::string> read_token(const std::string& value);

/// The longest line the batch commands (verify --batch, introspect --batch) take as a token: the
/// largest token any tokctl parser accepts (a compact JWE). A longer line is never held in memory.
std::size_t max_token_line();

/// Standard input as token lines for a batch command (lines up to max_token_line() bytes). Fails
/// (ErrorCode::usage) when stdin is a directory or closed, before anything is read.
Result<LineReader> stdin_token_lines();

/// What a batch command says of a line LineReader skipped as too long: "token is N bytes, over
/// the L-byte limit".
std::string token_line_too_long(std::size_t bytes);

/// Prints a warning (and a chmod hint) on stderr when the secret file `path` is readable by its group
/// or by everyone. `what` names it ("passphrase file", "private key file").
void warn_if_readable_by_others(const std::string& path, const std::string& what);

/// Appends `v` to `out` as a JSON string, as nlohmann's dump(-1, ' ', false, replace) writes it:
/// '"', '\\' and control characters escaped, everything else as is, invalid UTF-8 replaced by
/// U+FFFD. For output lines written directly (verify --batch, serve's access log) instead of
/// building and dumping a JSON object per line.
void append_json_string(std::string& out, std::string_view v);

/// A NAME=VALUE flag's VALUE: JSON when it is JSON (strictly parsed: depth, size and duplicate
/// limits, so a 60,000-deep value is a clean error), else the text itself. `what` names it in errors.
Result<nlohmann::json> claim_value(const std::string& what, const std::string& value);

/// Adds "Examples:" to a subcommand's help.
void examples(CLI::App* sub, const std::vector<std::string>& lines);

/// What a shell completes for an option's (or positional's) value. Attached to the option itself
/// by the helpers below and read back by `tokctl completion` and `tokctl __spec`, so completions
/// come from the CLI definition and cannot drift from it.
enum class ValueKind { text, choice, file, directory, command };

/// Whether a choice list also refuses other values when the command line is parsed.
enum class ChoiceCheck {
  strict,   ///< CLI::IsMember: any other value is a usage error
  suggest,  ///< completion only: the command checks the value itself (with a better hint)
};

/// A positional that may hold a value starting with '-' (base64url kids and tokens do one time in
/// 64), which CLI11 reads as an unknown option. The root command allows extras (they fall through
/// to it), and claim_dash_values() hands such a value to the selected command's first empty dash
/// positional after parsing. One case needs argv changed: CLI11 reads "-vXy..." as -v then
/// "-Xy...", "-oXy..." as --output Xy... and "-hXy..." as --help, so hold_dash_values() takes
/// such values out before parsing (anything that is not a cluster of the global short options and
/// not the value of the option before it) and claim_dash_values() gets them back.
/// Options that take a value need nothing: CLI11 takes their required value whatever it starts
/// with (`--kid -Xy...`, or `--kid=-Xy...`), and `--` always ends the options. `required`: a
/// missing value is a usage error ("kid is required"), checked after claiming. Returns `opt`.
CLI::Option* dash_positional(CLI::App* cmd, CLI::Option* opt, bool required = false);
/// After parsing, for the selected command: its unrecognised arguments that look like values go
/// to its empty dash positionals; an unknown option (e.g. a mistyped --flag) or a value with no
/// positional left is a usage error, as CLI11 itself would report it.
Result<void> claim_dash_values(CLI::App& app, const std::vector<std::string>& held = {});
/// Removes from `args` (in order, without argv[0]) the dash values CLI11 would misread as short
/// options, and returns them for claim_dash_values().
std::vector<std::string> hold_dash_values(const CLI::App& app, std::vector<std::string>& args);

/// Marks `opt` as naming a file (or "-" for stdin): shells complete file names. Returns `opt`.
CLI::Option* file_value(CLI::Option* opt);
/// Marks `opt` as naming a directory: shells complete directory names. Returns `opt`.
CLI::Option* dir_value(CLI::Option* opt);
/// Marks a positional as a command path (`help keys generate`). Returns `opt`.
CLI::Option* command_value(CLI::Option* opt);
/// Offers `values` (no whitespace in them) for `opt`; ChoiceCheck::strict also adds the
/// CLI::IsMember check. The one list per option that both the check and completion use. Returns `opt`.
CLI::Option* choice_value(CLI::Option* opt, std::vector<std::string> values, ChoiceCheck check);

/// A value hint as read back from an option.
struct ValueHint {
  ValueKind kind = ValueKind::text;
  std::vector<std::string> choices;  ///< the values, for ValueKind::choice
};
/// The hint of `opt`: the one set by the helpers above, else the set of a plain
/// ->check(CLI::IsMember(...)), else ValueKind::text.
ValueHint value_hint(CLI::Option& opt);

/// Value lists shared by several options, from core's registries: JWS algs, JWE key management
/// algs, JWE content encryptions, both kinds of alg (what `keys generate/add` accept), and curves.
std::vector<std::string> jws_alg_names();
std::vector<std::string> jwe_alg_names();
std::vector<std::string> jwe_enc_names();
std::vector<std::string> key_alg_names();
std::vector<std::string> curve_names();
/// RFC 8693 token types by their short names (access_token, ...; the full URNs are accepted too).
std::vector<std::string> token_type_names();
/// "access_token" (a name above) or the full URN -> the URN; anything else is passed on unchanged.
std::string token_type_urn(const std::string& value);

/// Builds the whole command tree (used by main and by completion/spec generation).
void build_app(CLI::App& app);
/// Builds the tree with only the command `only` under the root (all of it when `only` is empty).
void build_app(CLI::App& app, std::string_view only);
/// The command named by argv when it can be told before parsing: the first argument that is not a
/// global option (or its value), if it is a command that can run alone; else "" (build everything).
std::string_view leading_command(int argc, const char* const* argv);

}  // namespace tokctl::cli
