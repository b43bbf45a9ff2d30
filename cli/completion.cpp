// tokctl completion bash|zsh|fish, generated from the CLI11 command tree, so completions cannot
// drift from the real flags; and the hidden `tokctl __spec` (the tree as JSON) that the docs and
// completion tests check the man page and the shells against.
//
// What an option's value completes to comes from the option itself (common.hpp: choice_value,
// file_value, dir_value, command_value, or a plain CLI::IsMember check): there is no list of
// option names or values in this file.

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace tokctl::cli {
namespace {

struct Opt {
  std::vector<std::string> names;  // "-o", "--output"
  std::string description;
  bool takes_value = false;
  ValueHint value;
};

struct Positional {
  std::string name;
  std::string description;
  ValueHint value;
};

struct Cmd {
  std::vector<std::string> path;  // {"keys", "generate"}
  std::string description;
  std::vector<std::string> subcommands;
  std::vector<Opt> options;
  std::vector<Positional> positionals;
};

void collect(CLI::App& app, std::vector<std::string> path, std::vector<Cmd>& out) {
  Cmd cmd;
  cmd.path = path;
  cmd.description = app.get_description();
  for (CLI::Option* o : app.get_options()) {
    if (o->get_positional()) {
      cmd.positionals.push_back({o->get_name(), o->get_description(), value_hint(*o)});
      continue;
    }
    Opt opt;
    for (const auto& s : o->get_snames()) opt.names.push_back("-" + s);
    for (const auto& l : o->get_lnames()) opt.names.push_back("--" + l);
    opt.description = o->get_description();
    opt.takes_value = o->get_expected_max() > 0;  // 0 for flags
    if (opt.takes_value) opt.value = value_hint(*o);
    cmd.options.push_back(std::move(opt));
  }
  auto subs = app.get_subcommands([](CLI::App* s) { return !s->get_group().empty(); });
  for (const CLI::App* s : subs) cmd.subcommands.push_back(s->get_name());
  out.push_back(cmd);
  for (CLI::App* s : subs) {
    auto p = path;
    p.push_back(s->get_name());
    collect(*s, p, out);
  }
}

std::vector<Cmd> tree(CLI::App& root) {
  std::vector<Cmd> cmds;
  collect(root, {}, cmds);
  // Options of the root fall through to every subcommand.
  for (std::size_t i = 1; i < cmds.size(); ++i) {
    for (const auto& o : cmds[0].options) {
      if (o.names.size() == 1 && (o.names[0] == "--version")) continue;
      bool dup = false;
      for (const auto& e : cmds[i].options) dup = dup || e.names == o.names;
      if (!dup) cmds[i].options.push_back(o);
    }
  }
  return cmds;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string slash_path(const Cmd& c) {
  std::string p;
  for (const auto& w : c.path) p += "/" + w;
  return p;
}

std::string single_quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

const char* kind_name(ValueKind k) {
  switch (k) {
    case ValueKind::text: return "text";
    case ValueKind::choice: return "choice";
    case ValueKind::file: return "file";
    case ValueKind::directory: return "directory";
    case ValueKind::command: return "command";
  }
  return "text";
}

const Cmd* find(const std::vector<Cmd>& cmds, const std::vector<std::string>& path) {
  for (const auto& c : cmds)
    if (c.path == path) return &c;
  return nullptr;
}

std::string description_of(const std::vector<Cmd>& cmds, const Cmd& parent, const std::string& sub) {
  auto p = parent.path;
  p.push_back(sub);
  const Cmd* c = find(cmds, p);
  return c ? c->description : std::string();
}

// "/decode|/sign|/keys/generate|...": every command path, for the shells' path-tracking case.
std::string path_pattern(const std::vector<Cmd>& cmds) {
  std::vector<std::string> paths;
  for (const auto& c : cmds)
    if (!c.path.empty()) paths.push_back(slash_path(c));
  return join(paths, "|");
}

// How a shell completes the word after one option: a key of the map below.
struct ValueAction {
  ValueKind kind;
  std::string words;  // choices, space-separated
  bool operator<(const ValueAction& o) const { return std::tie(kind, words) < std::tie(o.kind, o.words); }
};

ValueAction action_of(const ValueHint& h) { return {h.kind, join(h.choices, " ")}; }

// "'/keys/generate --alg'" for an option of one command; "*' --keystore'" for a global one (the
// root's options hold on every path). Specific arms come before the global ones.
struct Arms {
  std::map<ValueAction, std::vector<std::string>> specific, global;
  std::vector<std::string> all;  // every value-taking "path option", for skipping values
};

Arms value_arms(const std::vector<Cmd>& cmds, const char* pat_open, const char* pat_close) {
  Arms arms;
  const Cmd& root = cmds.front();
  auto is_global = [&](const Opt& o) {
    return std::any_of(root.options.begin(), root.options.end(), [&](const Opt& r) { return r.names == o.names; });
  };
  for (const auto& c : cmds) {
    for (const auto& o : c.options) {
      if (!o.takes_value) continue;
      bool global = is_global(o);
      if (global && !c.path.empty()) continue;  // listed once, for the root
      for (const auto& n : o.names) {
        std::string pat = global ? std::string("*") + pat_open + " " + n + pat_close
                                 : pat_open + slash_path(c) + " " + n + pat_close;
        (global ? arms.global : arms.specific)[action_of(o.value)].push_back(pat);
        arms.all.push_back(pat);
      }
    }
  }
  return arms;
}

// ------------------------------------------------------------------------------------------ bash
std::string bash_action(const ValueAction& a) {
  switch (a.kind) {
    case ValueKind::choice: return "_tokctl_words " + single_quoted(a.words);
    case ValueKind::file: return "_tokctl_files -f";
    case ValueKind::directory: return "_tokctl_files -d";
    case ValueKind::text:
    case ValueKind::command: break;
  }
  return "COMPREPLY=()";
}

std::string bash(const std::vector<Cmd>& cmds) {
  Arms arms = value_arms(cmds, "'", "'");
  std::ostringstream o;
  o << "# bash completion for tokctl (generated by `tokctl completion bash`; do not edit)\n"
    << "_tokctl_subs() {  # the subcommands of a command path\n"
    << "  case $1 in\n";
  for (const auto& c : cmds)
    if (!c.subcommands.empty()) o << "    '" << slash_path(c) << "') REPLY='" << join(c.subcommands, " ") << "' ;;\n";
  o << "    *) REPLY='' ;;\n"
    << "  esac\n"
    << "}\n"
    << "_tokctl_words() { mapfile -t COMPREPLY < <(compgen -W \"$1\" -- \"$cur\"); }\n"
    << "_tokctl_files() {\n"
    << "  compopt -o filenames 2>/dev/null\n"
    << "  mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen \"$1\" -- \"$cur\")\n"
    << "}\n"
    << "_tokctl() {\n"
    << "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path='' topic='' i w REPLY\n"
    << "  COMPREPLY=()\n"
    << "  # --opt=value: bash splits at '=' (COMP_WORDBREAKS)\n"
    << "  if [[ $cur == = ]]; then cur=''; elif [[ $prev == = && COMP_CWORD -ge 2 ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
    << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
    << "    w=${COMP_WORDS[i]}\n"
    << "    case \"$path $w\" in\n"
    << "      " << join(arms.all, "|") << ")\n"
    << "        if [[ ${COMP_WORDS[i+1]} == = ]]; then ((i += 2)); else ((i++)); fi\n"
    << "        continue ;;\n"
    << "    esac\n"
    << "    if [[ $path == /help ]]; then\n"
    << "      [[ $w == -* ]] || topic=\"$topic/$w\"\n"
    << "      continue\n"
    << "    fi\n"
    << "    case \"$path/$w\" in\n"
    << "      " << path_pattern(cmds) << ") path=\"$path/$w\" ;;\n"
    << "    esac\n"
    << "  done\n"
    << "  case \"$path $prev\" in\n";
  for (const auto* group : {&arms.specific, &arms.global})
    for (const auto& [action, pats] : *group)
      o << "    " << join(pats, "|") << ") " << bash_action(action) << "; return ;;\n";
  o << "  esac\n"
    << "  local opts='' subs='' values='' files=''\n"
    << "  case \"$path\" in\n";
  for (const auto& c : cmds) {
    std::vector<std::string> opts;
    for (const auto& opt : c.options)
      for (const auto& n : opt.names) opts.push_back(n);
    o << "    '" << slash_path(c) << "') opts='" << join(opts, " ") << "'";
    if (!c.subcommands.empty()) o << " subs='" << join(c.subcommands, " ") << "'";
    for (const auto& p : c.positionals) {
      if (p.value.kind == ValueKind::choice) o << " values='" << join(p.value.choices, " ") << "'";
      if (p.value.kind == ValueKind::command) o << "; _tokctl_subs \"$topic\"; values=$REPLY";
      if (p.value.kind == ValueKind::file) o << " files=-f";
      if (p.value.kind == ValueKind::directory) o << " files=-d";
    }
    o << " ;;\n";
  }
  o << "  esac\n"
    << "  if [[ $cur == -* ]]; then\n"
    << "    _tokctl_words \"$opts\"\n"
    << "  else\n"
    << "    _tokctl_words \"$subs $values\"\n"
    << "    if [[ -n $files ]]; then _tokctl_files \"$files\"; fi\n"
    << "  fi\n"
    << "}\n"
    << "complete -F _tokctl tokctl\n";
  return o.str();
}

// ------------------------------------------------------------------------------------------- zsh
std::string zsh_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == ':' || ch == '[' || ch == ']' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

std::string zsh_action(const ValueAction& a) {
  switch (a.kind) {
    case ValueKind::choice: return "compadd -- " + a.words;
    case ValueKind::file: return "_files";
    case ValueKind::directory: return "_files -/";
    case ValueKind::text:
    case ValueKind::command: break;
  }
  return "_message -e values value";
}

std::string zsh(const std::vector<Cmd>& cmds) {
  Arms arms = value_arms(cmds, "'", "'");
  std::ostringstream o;
  o << "#compdef tokctl\n"
    << "# zsh completion for tokctl (generated by `tokctl completion zsh`; do not edit)\n"
    << "_tokctl_subs() {  # reply=( 'name:description' ... ): the subcommands of a command path\n"
    << "  case $1 in\n";
  for (const auto& c : cmds) {
    if (c.subcommands.empty()) continue;
    o << "    ('" << slash_path(c) << "') reply=(";
    for (const auto& sc : c.subcommands)
      o << " " << single_quoted(zsh_escape(sc) + ":" + zsh_escape(description_of(cmds, c, sc)));
    o << " ) ;;\n";
  }
  o << "    (*) reply=() ;;\n"
    << "  esac\n"
    << "}\n"
    << "_tokctl() {\n"
    << "  local cmdpath='' topic='' cur=${(Q)words[CURRENT]} prev=${(Q)words[CURRENT-1]} w i\n"
    << "  local -a opts values reply\n"
    << "  local files=''\n"
    << "  for ((i = 2; i < CURRENT; i++)); do\n"
    << "    w=${(Q)words[i]}\n"
    << "    case \"$cmdpath $w\" in\n"
    << "      (" << join(arms.all, "|") << ") ((i++)); continue ;;\n"
    << "    esac\n"
    << "    if [[ $cmdpath == /help ]]; then\n"
    << "      [[ $w == -* ]] || topic=\"$topic/$w\"\n"
    << "      continue\n"
    << "    fi\n"
    << "    case \"$cmdpath/$w\" in\n"
    << "      (" << path_pattern(cmds) << ") cmdpath=\"$cmdpath/$w\" ;;\n"
    << "    esac\n"
    << "  done\n"
    << "  if [[ $cur == --*=* ]]; then\n"
    << "    prev=${cur%%=*}\n"
    << "    compset -P '*='\n"
    << "  fi\n"
    << "  case \"$cmdpath $prev\" in\n";
  for (const auto* group : {&arms.specific, &arms.global})
    for (const auto& [action, pats] : *group)
      o << "    (" << join(pats, "|") << ") " << zsh_action(action) << "; return ;;\n";
  o << "  esac\n"
    << "  case $cmdpath in\n";
  for (const auto& c : cmds) {
    o << "    ('" << slash_path(c) << "')\n      opts=(";
    for (const auto& opt : c.options)
      for (const auto& n : opt.names) o << " " << single_quoted(zsh_escape(n) + ":" + zsh_escape(opt.description));
    o << " )";
    for (const auto& p : c.positionals) {
      if (p.value.kind == ValueKind::choice) o << "\n      values=( " << join(p.value.choices, " ") << " )";
      if (p.value.kind == ValueKind::command) o << "\n      _tokctl_subs \"$topic\"; values=( ${reply%%:*} )";
      if (p.value.kind == ValueKind::file) o << "\n      files=f";
      if (p.value.kind == ValueKind::directory) o << "\n      files=d";
    }
    o << " ;;\n";
  }
  o << "  esac\n"
    << "  if [[ $cur == -* ]]; then\n"
    << "    _describe -t options 'option' opts\n"
    << "    return\n"
    << "  fi\n"
    << "  _tokctl_subs \"$cmdpath\"\n"
    << "  local ret=1\n"
    << "  if (( ${#reply} )); then _describe -t commands 'command' reply && ret=0; fi\n"
    << "  if (( ${#values} )); then compadd -- $values && ret=0; fi\n"
    << "  if [[ $files == f ]]; then _files && ret=0; elif [[ $files == d ]]; then _files -/ && ret=0; fi\n"
    << "  return ret\n"
    << "}\n"
    << "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
    << "  _tokctl \"$@\"\n"
    << "else\n"
    << "  compdef _tokctl tokctl\n"
    << "fi\n";
  return o.str();
}

// ------------------------------------------------------------------------------------------ fish
std::string fish_condition(const Cmd& c) { return "__tokctl_at " + (c.path.empty() ? std::string("\"\"") : slash_path(c)); }

std::string fish(const std::vector<Cmd>& cmds) {
  Arms arms = value_arms(cmds, "", "");
  std::ostringstream o;
  o << "# fish completion for tokctl (generated by `tokctl completion fish`; do not edit)\n"
    << "function __tokctl_path --description 'tokctl: the command path before the cursor (/keys/generate); --topic: the help topic'\n"
    << "    set -l words (commandline -opc)\n"
    << "    set -e words[1]\n"
    << "    set -l path ''\n"
    << "    set -l topic ''\n"
    << "    set -l skip 0\n"
    << "    for w in $words\n"
    << "        if test $skip = 1\n"
    << "            set skip 0\n"
    << "            continue\n"
    << "        end\n"
    << "        switch \"$path $w\"\n"
    << "            case";
  for (const auto& p : arms.all) o << " " << single_quoted(p);
  o << "\n"
    << "                set skip 1\n"
    << "                continue\n"
    << "        end\n"
    << "        if test \"$path\" = /help\n"
    << "            string match -q -- '-*' $w; or set topic \"$topic/$w\"\n"
    << "            continue\n"
    << "        end\n"
    << "        switch \"$path/$w\"\n"
    << "            case";
  for (const auto& c : cmds)
    if (!c.path.empty()) o << " " << slash_path(c);
  o << "\n"
    << "                set path \"$path/$w\"\n"
    << "        end\n"
    << "    end\n"
    << "    if set -q argv[1]\n"
    << "        echo $topic\n"
    << "    else\n"
    << "        echo $path\n"
    << "    end\n"
    << "end\n"
    << "function __tokctl_at --description 'tokctl: is the command path before the cursor $argv[1]?'\n"
    << "    set -l p (__tokctl_path)\n"
    << "    test \"$p\" = \"$argv[1]\"\n"
    << "end\n"
    << "function __tokctl_subs --description 'tokctl: the subcommands of a command path, with descriptions'\n"
    << "    switch \"$argv[1]\"\n";
  for (const auto& c : cmds) {
    if (c.subcommands.empty()) continue;
    o << "        case " << (c.path.empty() ? std::string("''") : slash_path(c)) << "\n";
    for (const auto& sc : c.subcommands)
      o << "            printf '%s\\t%s\\n' " << sc << " " << single_quoted(description_of(cmds, c, sc)) << "\n";
  }
  o << "    end\n"
    << "end\n"
    << "complete -c tokctl -f\n";
  for (const auto& c : cmds) {
    const std::string cond = single_quoted(fish_condition(c));
    for (const auto& s : c.subcommands)
      o << "complete -c tokctl -n " << cond << " -a " << s << " -d " << single_quoted(description_of(cmds, c, s)) << "\n";
    for (const auto& p : c.positionals) {
      switch (p.value.kind) {
        case ValueKind::choice:
          o << "complete -c tokctl -n " << cond << " -x -a " << single_quoted(join(p.value.choices, " ")) << "\n";
          break;
        case ValueKind::command:
          o << "complete -c tokctl -n " << cond << " -x -a '(__tokctl_subs (__tokctl_path --topic))'\n";
          break;
        case ValueKind::file: o << "complete -c tokctl -n " << cond << " -F\n"; break;
        case ValueKind::directory:
          o << "complete -c tokctl -n " << cond << " -x -a '(__fish_complete_directories)'\n";
          break;
        case ValueKind::text: break;
      }
    }
    for (const auto& opt : c.options) {
      o << "complete -c tokctl -n " << cond;
      for (const auto& n : opt.names) o << (n.rfind("--", 0) == 0 ? " -l " + n.substr(2) : " -s " + n.substr(1));
      if (opt.takes_value) {
        switch (opt.value.kind) {
          case ValueKind::choice: o << " -x -a " << single_quoted(join(opt.value.choices, " ")); break;
          case ValueKind::file: o << " -r -F"; break;
          case ValueKind::directory: o << " -x -a '(__fish_complete_directories)'"; break;
          case ValueKind::text:
          case ValueKind::command: o << " -x"; break;
        }
      }
      o << " -d " << single_quoted(opt.description) << "\n";
    }
  }
  return o.str();
}

nlohmann::json value_json(const ValueHint& h) {
  nlohmann::json v = {{"kind", kind_name(h.kind)}};
  if (h.kind == ValueKind::choice) v["choices"] = h.choices;
  return v;
}

nlohmann::json spec(const std::vector<Cmd>& cmds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : cmds) {
    nlohmann::json opts = nlohmann::json::array();
    for (const auto& o : c.options) {
      nlohmann::json j = {{"names", o.names}, {"description", o.description}, {"takes_value", o.takes_value}};
      if (o.takes_value) j["value"] = value_json(o.value);
      opts.push_back(std::move(j));
    }
    nlohmann::json pos = nlohmann::json::array();
    for (const auto& p : c.positionals)
      pos.push_back({{"name", p.name}, {"description", p.description}, {"value", value_json(p.value)}});
    out.push_back({{"path", join(c.path, " ")}, {"description", c.description}, {"subcommands", c.subcommands},
                   {"options", opts}, {"positionals", pos}});
  }
  return out;
}

}  // namespace

void register_completion(CLI::App& app) {
  auto shell = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("completion", "Print a shell completion script (bash, zsh or fish)");
  choice_value(sub->add_option("shell", *shell, "bash, zsh or fish")->required(), {"bash", "zsh", "fish"},
               ChoiceCheck::strict);
  examples(sub, {"source <(tokctl completion bash)",
                 "tokctl completion zsh > \"${fpath[1]}/_tokctl\"",
                 "tokctl completion fish > ~/.config/fish/completions/tokctl.fish"});
  CLI::App* root = &app;
  on_run(sub, [shell, root] {
    auto cmds = tree(*root);
    std::cout << (*shell == "bash" ? bash(cmds) : *shell == "zsh" ? zsh(cmds) : fish(cmds));
    return 0;
  });

  auto* hidden = app.add_subcommand("__spec", "The command tree as JSON (for the docs and completion tests)");
  hidden->group("");
  on_run(hidden, [root] {
    std::cout << spec(tree(*root)).dump(2) << '\n';
    return 0;
  });
}

}  // namespace tokctl::cli
