// Claim templates of the policy: "{{sub}}", "{{client_id}}", "{{scope}}" and "{{subject.attr}}" in
// the configured claims, rendered per token.

#include <string>

#include <nlohmann/json.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {

using nlohmann::json;

// "{{sub}}", "{{client_id}}", "{{scope}}", "{{subject.attr}}" in a template string.
static json render_template(const std::string& tpl, const std::string& sub, const std::string& client_id,
                            const std::string& scope, const json& subject) {
  // A template that is exactly one {{subject.x}} keeps the attribute's JSON type.
  if (tpl.size() > 14 && tpl.rfind("{{subject.", 0) == 0 && tpl.find("}}") == tpl.size() - 2) {
    std::string attr = tpl.substr(10, tpl.size() - 12);
    if (subject.is_object() && subject.contains(attr)) return subject[attr];
    return nullptr;
  }
  std::string out;
  std::size_t pos = 0;
  while (pos < tpl.size()) {
    auto open = tpl.find("{{", pos);
    if (open == std::string::npos) {
      out += tpl.substr(pos);
      break;
    }
    auto close = tpl.find("}}", open);
    if (close == std::string::npos) {
      out += tpl.substr(pos);
      break;
    }
    out += tpl.substr(pos, open - pos);
    std::string name = tpl.substr(open + 2, close - open - 2);
    if (name == "sub") out += sub;
    else if (name == "client_id") out += client_id;
    else if (name == "scope") out += scope;
    else if (name.rfind("subject.", 0) == 0 && subject.is_object() && subject.contains(name.substr(8))) {
      const json& v = subject[name.substr(8)];
      out += v.is_string() ? v.get<std::string>() : v.dump();
    }
    pos = close + 2;
  }
  return out;
}

json render_claims(const json& tpl, const std::string& sub, const std::string& client_id, const std::string& scope,
                   const json& subject) {
  if (tpl.is_string()) return render_template(tpl.get<std::string>(), sub, client_id, scope, subject);
  if (tpl.is_object()) {
    json o = json::object();
    for (const auto& [k, v] : tpl.items()) {
      json r = render_claims(v, sub, client_id, scope, subject);
      if (!r.is_null()) o[k] = std::move(r);
    }
    return o;
  }
  if (tpl.is_array()) {
    json a = json::array();
    for (const auto& v : tpl) a.push_back(render_claims(v, sub, client_id, scope, subject));
    return a;
  }
  return tpl;
}

}  // namespace tokctl::tokens
