#include "common.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/io.hpp>

#include "render.hpp"

namespace tokctl::cli {
namespace {

std::vector<std::pair<CLI::App*, std::function<int()>>>& actions() {
  static std::vector<std::pair<CLI::App*, std::function<int()>>> a;
  return a;
}

struct DashPositional {
  CLI::App* cmd;
  CLI::Option* opt;
  bool required;
};
std::vector<DashPositional>& dash_positionals() {
  static std::vector<DashPositional> d;
  return d;
}

// A value that merely starts with '-': base64url kids, thumbprints and tokens. A "--" start is
// taken as a value only at token/thumbprint length, so mistyped long flags still fail.
bool dash_value(const std::string& a) {
  std::size_t min = a.rfind("--", 0) == 0 ? 20 : 8;
  return a.size() >= min && a[0] == '-' && std::all_of(a.begin(), a.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

}  // namespace

GlobalOptions& globals() {
  static GlobalOptions g;
  return g;
}

bool json_output() { return globals().output == "json"; }

Result<const Clock*> clock() {
  static SystemClock system;
  static std::optional<FixedClock> fixed;
  static std::optional<Error> error;
  static bool done = false;
  if (!done) {
    done = true;
    if (!globals().now.empty()) {
      auto t = parse_time(globals().now, system.now());
      if (t) fixed.emplace(*t);
      else error = t.error();
    }
  }
  if (error) return std::unexpected(*error);
  if (fixed) return &*fixed;
  return &system;
}

Result<std::optional<std::string>> passphrase() {
  static std::optional<Result<std::optional<std::string>>> cached;
  if (cached) return *cached;
  const auto& file = globals().passphrase_file;
  if (!file.empty()) {
    warn_if_readable_by_others(file, "passphrase file");
    auto data = read_input(file);
    if (!data) {
      cached = std::unexpected(data.error());
    } else {
      std::string p = std::move(*data);
      if (!p.empty() && p.back() == '\n') p.pop_back();
      if (!p.empty() && p.back() == '\r') p.pop_back();
      if (p.empty()) cached = fail(ErrorCode::usage, "the passphrase file '" + file + "' is empty");
      else cached = std::optional<std::string>(std::move(p));
    }
  } else if (const char* env = std::getenv("TOKCTL_PASSPHRASE"); env && *env) {
    cached = std::optional<std::string>(env);
  } else {
    cached = std::optional<std::string>();
  }
  return *cached;
}

// --keystore, else $TOKCTL_KEYSTORE, else $XDG_DATA_HOME/tokctl, else ~/.local/share/tokctl. The
// environment is read here, in the CLI: core takes explicit paths.
std::string keystore_dir() {
  if (!globals().keystore.empty()) return globals().keystore;
  if (const char* env = std::getenv("TOKCTL_KEYSTORE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/tokctl";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/tokctl";
}

ConfigChoice config_choice() {
  if (!globals().config.empty()) return {globals().config, "--config"};
  if (const char* env = std::getenv("TOKCTL_CONFIG"); env && *env) return {env, "$TOKCTL_CONFIG"};
  return {};
}

namespace {

// -v: which trust roots this run uses, once each, on stderr (never on stdout, which scripts read).
void note_used(const char* what, const std::string& path, const std::string& from) {
  if (!globals().verbose) return;
  if (json_output()) {
    std::cerr << nlohmann::json{{"using", what}, {"path", path}, {"from", from}}.dump() << '\n';
  } else {
    std::cerr << "tokctl: using " << what << " " << (path.empty() ? "(none)" : "'" + path + "'") << " (" << from
              << ")\n";
  }
}

}  // namespace

Result<const tokens::Policy*> policy() {
  static std::optional<Result<tokens::Policy>> cached;
  if (!cached) {
    ConfigChoice c = config_choice();
    if (c.path.empty()) {
      note_used("policy", "", "built-in defaults");
      // A tokctl.yaml in the working directory is never read implicitly: it could name another
      // keystore or store, and so change which keys are trusted. Say so instead of ignoring it silently.
      struct stat st{};
      if (::stat("tokctl.yaml", &st) == 0 && !globals().quiet) {
        std::cerr << "tokctl: note: ./tokctl.yaml is not read implicitly; pass --config tokctl.yaml "
                     "(or set TOKCTL_CONFIG) to use it\n";
      }
    } else {
      note_used("policy", c.path, c.from);
    }
    cached = tokens::load_policy(c.path);
  }
  if (!*cached) return std::unexpected(cached->error());
  return &**cached;
}

Result<std::unique_ptr<tokens::TokenService>> open_service() {
  auto p = policy();
  if (!p) return std::unexpected(p.error());
  auto ks = open_keystore(false);
  if (!ks) return std::unexpected(ks.error());
  auto pass = passphrase();
  if (!pass) return std::unexpected(pass.error());
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  return tokens::TokenService::open(**p, std::move(*ks), **clk, *pass);
}

namespace {

// The keystore this run uses and where that choice came from: keystore_dir(), or the policy's
// "keystore:" when neither the flag nor the environment names one (the policy itself is only ever
// an explicit one, --config or $TOKCTL_CONFIG).
Result<std::pair<std::string, std::string>> keystore_in_use() {
  if (!globals().keystore.empty()) return std::pair(globals().keystore, std::string("--keystore"));
  const char* env = std::getenv("TOKCTL_KEYSTORE");
  if (env && *env) return std::pair(std::string(env), std::string("$TOKCTL_KEYSTORE"));
  auto p = policy();
  if (!p) return std::unexpected(p.error());
  if (!(*p)->keystore.empty()) return std::pair((*p)->keystore, "keystore: in policy " + (*p)->source);
  return std::pair(keystore_dir(), std::string("default: $XDG_DATA_HOME/tokctl"));
}

// The keystore a hint names: the one in use, as far as it can be told.
std::string hinted_keystore() {
  auto used = keystore_in_use();
  return used ? used->first : keystore_dir();
}

}  // namespace

Result<keys::Keystore> open_keystore(bool create) {
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  auto used = keystore_in_use();
  if (!used) return std::unexpected(used.error());
  const auto& [dir, from] = *used;
  static bool noted = false;
  if (!noted) {
    noted = true;
    note_used("keystore", dir, from);
  }
  return keys::Keystore::open(dir, **clk, create);
}

Result<std::string> unlock_key_material(std::string content, const std::string& name) {
  std::string_view text = trim(content);
  if (std::count(text.begin(), text.end(), '.') != 4 || text.find('{') != std::string_view::npos) return content;
  auto pass = passphrase();
  if (!pass) return std::unexpected(pass.error());
  if (!*pass) {
    return fail(ErrorCode::keystore, name + " is encrypted with a passphrase",
                "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE");
  }
  auto pw = jose::Jwk::from_secret(**pass);
  if (!pw) return std::unexpected(pw.error());
  auto dec = jose::decrypt_compact(text, *pw);
  if (!dec) {
    return fail(ErrorCode::keystore, "cannot decrypt " + name + ": " + dec.error().message, "wrong passphrase?");
  }
  return std::move(dec->plaintext);
}

void on_run(CLI::App* sub, std::function<int()> action) { actions().emplace_back(sub, std::move(action)); }

CLI::Option* dash_positional(CLI::App* cmd, CLI::Option* opt, bool required) {
  dash_positionals().push_back({cmd, opt, required});
  return opt;
}

namespace {

// "-q", "-vq", "-ojson", "-qvotext": what CLI11 reads as a cluster of the global short options
// (-h, -q, -v flags; -o with its value).
bool short_cluster(std::string_view a) {
  std::size_t i = 1;
  while (i < a.size() && (a[i] == 'h' || a[i] == 'q' || a[i] == 'v')) ++i;
  if (i == a.size()) return true;
  if (a[i] != 'o') return false;
  std::string_view value = a.substr(i + 1);
  return value.empty() || value == "text" || value == "json";
}

// Whether `a` names an option of `app` or of one of its commands that takes a value.
bool takes_value(const CLI::App& app, const std::string& a) {
  for (const CLI::Option* opt : app.get_options())
    if (opt->check_name(a)) return opt->get_expected_min() > 0;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (takes_value(*sub, a)) return true;
  return false;
}

std::string command_path(const CLI::App* cmd) {
  std::string path;
  for (; cmd && cmd->get_parent(); cmd = cmd->get_parent()) path = " " + cmd->get_name() + path;
  return "tokctl" + path;
}

}  // namespace

std::vector<std::string> hold_dash_values(const CLI::App& app, std::vector<std::string>& args) {
  std::vector<std::string> held;
  std::vector<std::string> kept;
  kept.reserve(args.size());
  bool options = true;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") options = false;
    bool value_of_previous = !kept.empty() && kept.back().find('=') == std::string::npos &&
                             kept.back().size() > 1 && kept.back()[0] == '-' && takes_value(app, kept.back());
    if (options && !value_of_previous && a.size() > 1 && a[1] != '-' && dash_value(a) && !short_cluster(a)) {
      held.push_back(a);
    } else {
      kept.push_back(a);
    }
  }
  args = std::move(kept);
  return held;
}

Result<void> claim_dash_values(CLI::App& app, const std::vector<std::string>& held) {
  // The deepest parsed command, as selected_action() picks it.
  CLI::App* cmd = &app;
  for (auto& [sub, action] : actions())
    if (sub->parsed()) cmd = sub;
  std::vector<std::string> extras = app.remaining(true);
  extras.insert(extras.end(), held.begin(), held.end());
  for (const std::string& extra : extras) {
    if (extra == "--") continue;  // CLI11 keeps the positional mark among the extras
    auto free = std::find_if(dash_positionals().begin(), dash_positionals().end(), [&](const DashPositional& d) {
      return d.cmd == cmd && d.opt->count() == 0;
    });
    if (!dash_value(extra) || free == dash_positionals().end()) {
      return fail(ErrorCode::usage, "The following argument was not expected: " + extra,
                  cmd == &app ? std::string("run 'tokctl help' or 'tokctl <command> --help'")
                              : "run '" + command_path(cmd) + " --help'; a value starting with '-' can follow '--'");
    }
    free->opt->add_result(extra);
    free->opt->run_callback();
  }
  for (const auto& d : dash_positionals()) {
    if (d.required && d.cmd == cmd && d.opt->count() == 0) {
      return fail(ErrorCode::usage, d.opt->get_name() + " is required", "run '" + command_path(cmd) + " --help'");
    }
  }
  return {};
}

std::function<int()> selected_action(CLI::App&) {
  // The deepest parsed subcommand wins (keys generate over keys).
  std::function<int()> chosen;
  for (auto& [sub, action] : actions()) {
    if (sub->parsed()) chosen = action;
  }
  return chosen;
}

std::string flag_for(std::string_view param) {
  std::string flag = "--";
  for (char c : param) flag.push_back(c == '_' ? '-' : c);
  return flag;
}

namespace {

constexpr const char* k_force_rotate =
    "--force rotates anyway (emergencies only: verifiers with a cached JWKS reject new tokens until their cache "
    "expires)";

// How the CLI spells a core remedy: the command that does it.
std::string remedy_text(Remedy remedy, const std::string& subject) {
  auto quoted = [](const std::string& s) { return "'" + s + "'"; };
  switch (remedy) {
    case Remedy::none: return {};
    case Remedy::add_signing_key:
      return "run: tokctl keys add --alg " + (subject.empty() ? std::string("ES256") : subject) + " --keystore " +
             quoted(hinted_keystore());
    case Remedy::add_encryption_key:
      return "run: tokctl keys add --alg " + (subject.empty() ? std::string("ECDH-ES+A256KW") : subject) +
             " --keystore " + quoted(hinted_keystore());
    case Remedy::generate_key: return "run: tokctl keys generate --alg " + subject;
    case Remedy::rotate_key: return "run: tokctl keys rotate --alg " + subject;
    case Remedy::publish_jwks:
      return "run: tokctl keys jwks --out FILE --force, then tokctl keys rotate --alg " + subject +
             " after --min-next-age; " + k_force_rotate;
    case Remedy::import_key_file:
      return "run: tokctl keys import " + quoted(subject) + " --keystore " + quoted(hinted_keystore()) +
             " (see tokctl help keys import)";
    case Remedy::check_config: return "run: tokctl config check --config " + quoted(subject);
    case Remedy::allow_weak_keys: return "to check it anyway while debugging: tokctl verify --insecure";
    case Remedy::pass_passphrase: return "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE";
    case Remedy::check_clock: return "is --now right?";
    case Remedy::force_rotate:
      return std::string("from cron: tokctl keys rotate --if-older-than DUR; ") + k_force_rotate;
    case Remedy::force_overwrite: return "pass --force to replace it";
    case Remedy::name_alg: return subject.empty() ? "pass --alg" : "pass --alg " + subject;
  }
  return {};
}

}  // namespace

std::string hint_text(const std::string& hint, Remedy remedy, const std::string& subject) {
  std::string how = remedy_text(remedy, subject);
  if (how.empty()) return hint;
  return hint.empty() ? how : hint + "; " + how;
}

void replace_hint(Error& error, std::string hint) {
  error.hint = std::move(hint);
  error.remedy = Remedy::none;
}

Result<void> flush_stdout() {
  errno = 0;
  std::cout.flush();
  if (!std::cout.fail()) return {};
  const int err = errno;
  return fail(ErrorCode::keystore,
              std::string("cannot write to standard output") + (err ? std::string(": ") + std::strerror(err) : ""),
              "nothing was handed out: is the disk full, or the output closed? Write to a file with --out where "
              "the command has it");
}

int report(const Error& error) {
  // An OAuth refusal: the code first; -o json also prints the RFC 6749 error object on stdout.
  std::string message = error.message;
  if (error.oauth != OAuthCode::none) {
    if (json_output()) print_json({{"error", to_string(error.oauth)}, {"error_description", error.message}});
    message = std::string(to_string(error.oauth)) + ": " + message;
  }
  // The core names the parameter; the CLI names its flag.
  if (!error.param.empty()) message = flag_for(error.param) + ": " + message;
  // Messages quote token and file content (claims, kids, names): never raw on a terminal.
  std::cerr << style(Stream::err, "31", "tokctl: error: ") << terminal_safe(message, Newlines::keep) << '\n';
  if (auto hint = hint_text(error.hint, error.remedy, error.subject); !hint.empty()) {
    std::cerr << style(Stream::err, "33", "hint: ") << terminal_safe(hint, Newlines::keep) << '\n';
  }
  return exit_code(error.code);
}

Result<std::string> read_arg(const std::string& value, bool trim_ws) {
  auto data = read_input(value.empty() ? "-" : value);
  if (!data) return data;
  if (trim_ws) return std::string(trim(*data));
  return data;
}

std::string normalize_token(std::string_view text) {
  text = trim(text);
  // "Authorization: Bearer x" / "DPoP x" pasted from a request: the scheme is not part of the token.
  for (std::string_view scheme : {"authorization:", "bearer", "dpop"}) {
    if (text.size() > scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), text.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }) &&
        (scheme.back() == ':' || std::isspace(static_cast<unsigned char>(text[scheme.size()])))) {
      text = trim(text.substr(scheme.size()));
    }
  }
  // Tokens wrapped across lines (mail, terminals, YAML folding): no JOSE or opaque token contains
  // whitespace, so all of it goes.
  std::string out;
  out.reserve(text.size());
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  return out;
}

bool pasted_token(std::string_view line) {
  for (int c : {' ', '\t', ':'})
    if (std::memchr(line.data(), c, line.size()) != nullptr) return true;
  return false;
}

Result<std::string> read_token(const std::string& value) {
  if (value.empty() || value == "-") {
    if (::isatty(STDIN_FILENO)) {
      std::cerr << "tokctl: reading the token from standard input (paste it, then press Ctrl-D)\n";
    }
    auto in = read_arg("-", true);
    if (!in) return in;
    return normalize_token(*in);
  }
  // An existing file is read (a compact token has no '/', and never names a file by accident).
  struct stat st{};
  if (value.size() < 4096 && ::stat(value.c_str(), &st) == 0) {
    auto in = read_input(value);
    if (!in) return in;
    return normalize_token(*in);
  }
  // What can only be a file name is not parsed as a token ("header segment is empty" would not
  // say that the file is missing): a path from / . .. or ~, or a name with a file extension.
  const std::string_view v = value;
  const bool path_like = v.starts_with("/") || v.starts_with("./") || v.starts_with("../") || v.starts_with("~/");
  static constexpr std::string_view k_extensions[] = {".txt", ".jwt", ".jws", ".jwe", ".token", ".json", ".jsonl", ".log"};
  const bool file_extension = std::count(v.begin(), v.end(), '.') == 1 &&
                              std::any_of(std::begin(k_extensions), std::end(k_extensions), [&](std::string_view ext) {
                                return v.size() > ext.size() && v.ends_with(ext);
                              });
  if (path_like || file_extension) {
    auto in = read_input(value);  // fails, saying why (a missing file, no permission)
    if (!in) {
      in.error().hint = "'" + value + "' is read as a file name, not as a token: give the token itself, a file "
                        "that exists, or - to read standard input";
      return in;
    }
    return normalize_token(*in);
  }
  return normalize_token(value);
}

std::size_t max_token_line() { return std::max(jose::k_max_token_bytes, jose::JweLimits{}.max_token_bytes); }

Result<LineReader> stdin_token_lines() {
  if (auto ok = check_stdin(); !ok) return std::unexpected(ok.error());
  return LineReader(STDIN_FILENO, "standard input", max_token_line());
}

std::string token_line_too_long(std::size_t bytes) {
  return "token is " + std::to_string(bytes) + " bytes, over the " + std::to_string(max_token_line()) +
         "-byte limit";
}

void warn_if_readable_by_others(const std::string& path, const std::string& what) {
  struct stat st{};
  if (path.empty() || path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  if ((st.st_mode & (S_IRGRP | S_IROTH)) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  std::cerr << style(Stream::err, "33", "tokctl: warning: ") << what << " '" << path << "' is readable by "
            << ((st.st_mode & S_IROTH) ? "everyone" : "its group") << " (mode " << mode << ")\n"
            << style(Stream::err, "33", "hint: ") << "chmod 600 '" << path << "'\n";
}

Result<nlohmann::json> claim_value(const std::string& what, const std::string& value) {
  // accept() only validates (iteratively: no tree, no recursion), so any depth is safe here.
  if (!nlohmann::json::accept(value)) return nlohmann::json(value);
  return jose::parse_json_strict(value, what);
}

void examples(CLI::App* sub, const std::vector<std::string>& lines) {
  std::string text = "\nExamples:\n";
  for (const auto& l : lines) text += "  " + l + "\n";
  sub->footer(text);
}

namespace {

// The hint rides on the option as a validator that accepts everything and has no description
// (so --help is unchanged); its name carries the data: "complete <kind> [value...]".
constexpr std::string_view k_hint_prefix = "complete ";

CLI::Option* mark(CLI::Option* opt, const std::string& data) {
  return opt->check(CLI::Validator([](std::string&) { return std::string(); }, "",
                                   std::string(k_hint_prefix) + data));
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find_first_of(" ,", i);
    if (j == std::string_view::npos) j = text.size();
    if (j > i) out.emplace_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

CLI::Option* file_value(CLI::Option* opt) { return mark(opt, "file"); }
CLI::Option* dir_value(CLI::Option* opt) { return mark(opt, "directory"); }
CLI::Option* command_value(CLI::Option* opt) { return mark(opt, "command"); }

CLI::Option* choice_value(CLI::Option* opt, std::vector<std::string> values, ChoiceCheck check) {
  std::string data = "choice";
  for (const auto& v : values) {
    if (v.empty() || v.find_first_of(" ,\t\n'\"") != std::string::npos) {
      throw std::invalid_argument("choice value '" + v + "' of " + opt->get_name() +
                                   " cannot be completed (empty, blank, comma or quote)");
    }
    data += " " + v;
  }
  if (check == ChoiceCheck::strict) opt->check(CLI::IsMember(values));
  return mark(opt, data);
}

ValueHint value_hint(CLI::Option& opt) {
  for (int i = 0;; ++i) {
    const CLI::Validator* v = nullptr;
    try {
      v = opt.get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      break;
    }
    const std::string& name = v->get_name();
    if (name.rfind(k_hint_prefix, 0) != 0) continue;
    auto w = words(std::string_view(name).substr(k_hint_prefix.size()));
    ValueHint hint;
    if (w.empty()) continue;
    if (w[0] == "file") hint.kind = ValueKind::file;
    else if (w[0] == "directory") hint.kind = ValueKind::directory;
    else if (w[0] == "command") hint.kind = ValueKind::command;
    else if (w[0] == "choice") hint = {ValueKind::choice, {w.begin() + 1, w.end()}};
    return hint;
  }
  // A plain ->check(CLI::IsMember({...})) shows its set in the type name: "TEXT:{jwk,pem}".
  const std::string type = opt.get_type_name();
  auto open = type.find(":{");
  auto close = open == std::string::npos ? open : type.find('}', open);
  if (close != std::string::npos) {
    return {ValueKind::choice, words(std::string_view(type).substr(open + 2, close - open - 2))};
  }
  return {};
}

std::vector<std::string> jws_alg_names() {
  std::vector<std::string> out;
  for (auto a : jose::k_all_algs) out.emplace_back(jose::to_string(a));
  return out;
}

std::vector<std::string> jwe_alg_names() {
  std::vector<std::string> out;
  for (auto a : jose::k_all_key_mgmt_algs) out.emplace_back(jose::to_string(a));
  return out;
}

std::vector<std::string> jwe_enc_names() {
  std::vector<std::string> out;
  for (auto e : jose::k_all_content_encs) out.emplace_back(jose::to_string(e));
  return out;
}

std::vector<std::string> key_alg_names() {
  auto out = jws_alg_names();
  for (auto& a : jwe_alg_names())
    if (a.rfind("PBES2-", 0) != 0) out.push_back(std::move(a));  // PBES2 derives from a passphrase: no key
  return out;
}

std::vector<std::string> curve_names() {
  // EC for ES* and ECDH-ES, OKP for EdDSA (Ed*) and ECDH-ES (X*): what core/jose/keygen.cpp makes.
  return {"P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519", "X448"};
}

std::vector<std::string> token_type_names() {
  std::vector<std::string> out;
  for (std::string urn : {tokens::k_urn_access_token, tokens::k_urn_refresh_token, tokens::k_urn_id_token,
                          tokens::k_urn_jwt})
    out.push_back(urn.substr(urn.rfind(':') + 1));
  return out;
}

std::string token_type_urn(const std::string& value) {
  for (const char* urn : {tokens::k_urn_access_token, tokens::k_urn_refresh_token, tokens::k_urn_id_token,
                          tokens::k_urn_jwt}) {
    std::string u = urn;
    if (value == u || value == u.substr(u.rfind(':') + 1)) return u;
  }
  return value;
}

void append_json_string(std::string& out, std::string_view v) {
  static constexpr char k_hex[] = "0123456789abcdef";
  bool plain = true;  // nothing to escape: the common case (kids, subjects), appended in one go
  for (unsigned char c : v) {
    if (c >= 0x80) {
      out += nlohmann::json(std::string(v)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
    plain = plain && c >= 0x20 && c != '"' && c != '\\';
  }
  if (plain) {
    out += '"';
    out += v;
    out += '"';
    return;
  }
  out += '"';
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += k_hex[c >> 4];
          out += k_hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace tokctl::cli
