// tokctl serve: the token service over HTTP (core/server), on the keystore, store and policy the
// other commands use; or, with --dev, on throwaway ones made for the run.

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/server/http_server.hpp>
#include <tokctl/server/oauth.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/batched_log.hpp>
#include <tokctl/util/time.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

struct ServeCli {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;
  bool dev = false;
  std::string jwks_max_age = "5m";
  bool dpop_nonce = false;
  std::string tls_cert;
  std::string tls_key;
  std::string client_ca;
};

// "HOST:PORT" or "[V6]:PORT".
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  auto bad = [&] { return fail_param(ErrorCode::usage, "listen", "'" + text + "' is not HOST:PORT"); };
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return bad();
  const unsigned long p = std::stoul(port);
  if (p > 65535) return bad();
  return std::pair(host, static_cast<std::uint16_t>(p));
}

// The --dev environment: a keystore with an active ES256 key, a store and a policy with one
// client allowed every grant, in a temporary directory removed on exit.
struct DevEnv {
  std::string dir;
  std::string secret;
  ~DevEnv() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

Result<std::unique_ptr<tokens::TokenService>> open_dev_service(DevEnv& env, const std::string& issuer,
                                                               const Clock& clock) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tokctl-serve-dev-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return fail(ErrorCode::keystore, "cannot create a temporary directory for --dev");
  env.dir = tmpl;
  auto ks = keys::Keystore::open(env.dir + "/keystore", clock, true);
  if (!ks) return std::unexpected(ks.error());
  keys::AddOptions add;
  add.alg = "ES256";
  add.state = keys::KeyState::active;
  if (auto k = ks->add(add, std::nullopt); !k) return std::unexpected(k.error());
  tokens::Policy p;
  p.issuer = issuer;
  p.keystore = env.dir + "/keystore";
  p.store = "sqlite:" + env.dir + "/tokens.db";
  for (const char* s : {"read", "write", "admin", "openid", "profile", "email", "offline_access"}) {
    tokens::ScopeRule rule;
    rule.name = s;
    p.scopes.push_back(rule);
  }
  env.secret = tokens::generate_client_secret();
  tokens::ClientPolicy dev;
  dev.id = "dev";
  dev.secret_hash = tokens::hash_generated_secret(env.secret);
  dev.grants = std::vector<std::string>{tokens::k_grant_client_credentials, tokens::k_grant_refresh_token, tokens::k_grant_token_exchange,
                tokens::k_grant_jwt_bearer};
  p.clients.emplace(dev.id, dev);
  return tokens::TokenService::open(std::move(p), std::move(*ks), clock, std::nullopt);
}

// Known paths are logged as they are; anything else as "(other)", so that a token pasted into a
// URL never reaches the log.
std::string_view loggable_path(std::string_view path) {
  for (std::string_view known : {"/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/jwks", "/healthz",
                                 "/metrics", "/phantom", "/.well-known/oauth-authorization-server",
                                 "/.well-known/openid-configuration"}) {
    if (path == known) return known;
  }
  return "(other)";
}

// One access-log line: {"client_id"?,"latency_us","method","path","status","time"} in the order
// nlohmann's sorted objects print them, written directly into `out`. Building and dumping a JSON
// object per request was 5% of the server's CPU on client_credentials (perf, issue 9).
void access_line(std::string& out, const server::AccessRecord& r, const std::string& time) {
  out.clear();
  out += '{';
  if (!r.client_id.empty()) {
    out += "\"client_id\":";
    append_json_string(out, r.client_id);
    out += ',';
  }
  out += "\"latency_us\":";
  out += std::to_string(r.latency_us);
  out += ",\"method\":";
  append_json_string(out, r.method);
  out += ",\"path\":";
  append_json_string(out, loggable_path(r.path));
  out += ",\"status\":";
  out += std::to_string(r.status);
  out += ",\"time\":";
  append_json_string(out, time);
  out += "}\n";
}

// The soft open-files limit raised to the hard one (each connection is a descriptor; systemd and
// shells default the soft limit to 1024). Returns the soft limit in force, 0 for unlimited.
std::uint64_t raise_open_files_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur != limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? 0 : static_cast<std::uint64_t>(limit.rlim_cur);
}

int run_serve(const ServeCli& o) {
  auto listen = parse_listen(o.listen);
  if (!listen) return report(listen.error());
  if (o.threads < 0 || o.threads > 256) return report(fail_param(ErrorCode::usage, "threads", "threads must be 0..256").error());
  auto max_age = parse_duration(o.jwks_max_age);
  if (!max_age) return report(max_age.error());
  auto clk = clock();
  if (!clk) return report(clk.error());

  // A reader of stdout/stderr that went away must not kill the service (EPIPE is reported instead).
  ::signal(SIGPIPE, SIG_IGN);
  // SIGINT/SIGTERM are taken by sigwait below: blocked before any server thread exists, so that
  // every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // The endpoints need the service, and --dev's issuer needs the port: bind first, answer 503
  // until the endpoints exist (the ready line comes after, so no client is that early).
  // Set once before the ready line; the object outlives the server threads (stopped first).
  std::atomic<const server::OAuthEndpoints*> endpoints{nullptr};
  auto handler = [&](const server::HttpRequest& req, server::Respond respond) {
    const server::OAuthEndpoints* e = endpoints.load(std::memory_order_acquire);
    if (!e) return respond(server::not_ready_response());
    e->handle_async(req, std::move(respond));
  };
  // Request lines leave in batches (batched_log.hpp): a write(2) and a lock handoff per request
  // were a tenth of a JWKS answer's CPU. Declared before the server: it outlives its threads.
  BatchedLog log_out(std::cerr);
  const Clock& clock_ref = **clk;
  auto log = [&](const server::AccessRecord& r) {
    if (const auto* e = endpoints.load(std::memory_order_acquire)) e->observe(r.path, r.status, r.latency_us, r.store_failure);
    // r.method is HTTP's own or "(other)" (the server never passes on what a client made up).
    thread_local std::string text;  // each I/O thread's line buffer, reused
    thread_local UnixTime shown = -1;
    thread_local std::string time;  // formatted once a second, not once a request
    if (const UnixTime now = clock_ref.now(); now != shown) {
      time = format_rfc3339(now);
      shown = now;
    }
    access_line(text, r, time);
    log_out.line(text);
  };
  server::ServerOptions so;
  so.host = listen->first;
  so.port = listen->second;
  so.threads = o.threads;
  so.tls_cert = o.tls_cert;
  so.tls_key = o.tls_key;
  so.client_ca = o.client_ca;
  auto event = [&](json line) {
    line["time"] = format_rfc3339(clock_ref.now());
    log_out.now(line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  };
  so.notice = [&](const std::string& text) { event(json{{"notice", text}}); };
  const std::uint64_t open_files = raise_open_files_limit();
  auto srv = server::HttpServer::start_async(so, handler, log, &server::OAuthEndpoints::writes);
  if (!srv) return report(srv.error());
  // The connection cap in force, and why when the open-files limit lowered it.
  {
    json line{{"notice", "accepting up to " + std::to_string((*srv)->max_connections()) + " connections"},
              {"max_connections", (*srv)->max_connections()}};
    if (open_files != 0) line["open_files_limit"] = open_files;
    if ((*srv)->max_connections() < so.max_connections) {
      line["notice"] = line["notice"].get<std::string>() + " (lowered from " + std::to_string(so.max_connections) +
                       " by the open-files limit " + std::to_string(open_files) + ")";
    }
    event(std::move(line));
  }
  const std::string host = (*srv)->host().find(':') != std::string::npos ? "[" + (*srv)->host() + "]" : (*srv)->host();
  const std::string address = host + ":" + std::to_string((*srv)->port());

  DevEnv dev;
  const std::string scheme = o.tls_cert.empty() ? "http://" : "https://";
  auto service = o.dev ? open_dev_service(dev, scheme + address, clock_ref) : open_service();
  if (!service) {
    (*srv)->stop(std::chrono::milliseconds(0));
    log_out.flush();  // the lines of requests answered 503 meanwhile, before the error
    return report(service.error());
  }
  (*service)->prune_every(std::chrono::minutes(5));
  server::EndpointOptions eo;
  eo.jwks_max_age = *max_age;
  if (o.dev) eo.base_url = scheme + address;
  eo.tls_client_auth = !o.client_ca.empty();
  eo.dpop_nonce = o.dpop_nonce;
  auto made = std::make_unique<const server::OAuthEndpoints>(**service, clock_ref, eo);
  endpoints.store(made.get(), std::memory_order_release);
  json ready{{"issuer", (*service)->policy().issuer},
             {"listen", address},
             {"token_endpoint", made->metadata()["token_endpoint"]}};
  if (o.dev) {
    ready["client_id"] = "dev";
    ready["client_secret"] = dev.secret;  // the one place it is shown: a throwaway for this run
  }
  std::cout << ready.dump() << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*srv)->stop(std::chrono::seconds(10));  // every server thread has returned
  endpoints.store(nullptr);
  // No client authentication may still be running when the service goes: a task that ran a KDF
  // goes on into the service.
  made->stop_authentication();
  // Then the service: closing its store runs the completions of writes still queued (past the
  // grace period), which use the endpoints and post to the stopped server, both still there.
  // It also closes the store before the --dev directory goes.
  service->reset();
  made.reset();
  return 0;
}

}  // namespace

void register_serve(CLI::App& app) {
  auto s = std::make_shared<ServeCli>();
  auto* serve = app.add_subcommand("serve", "Run the OAuth token service over HTTP (token, introspect, revoke, JWKS)");
  serve->add_option("--listen", s->listen, "HOST:PORT to listen on (port 0: any free port)")->capture_default_str();
  serve->add_option("--threads", s->threads, "Server threads (0: one per core)")->capture_default_str();
  serve->add_flag("--dev", s->dev,
                  "Throwaway keystore, store and policy with one client 'dev' (its secret is printed once)");
  serve->add_option("--jwks-max-age", s->jwks_max_age, "Cache-Control max-age of /oauth/jwks and metadata")
      ->capture_default_str();
  serve->add_flag("--dpop-nonce", s->dpop_nonce,
                  "DPoP proofs at the token endpoint must carry a nonce the server hands out (RFC 9449 §8)");
  file_value(serve->add_option("--tls-cert", s->tls_cert, "Serve HTTPS (TLS 1.2+): PEM certificate chain"));
  file_value(serve->add_option("--tls-key", s->tls_key, "PEM private key of --tls-cert"));
  file_value(serve->add_option("--client-ca", s->client_ca,
                               "mTLS: request client certificates, verified against this PEM CA bundle "
                               "(tls_client_auth clients)"));
  examples(serve, {"tokctl serve --dev --listen 127.0.0.1:0",
                   "tokctl serve --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem",
                   "tokctl --config tokctl.yaml serve --listen 0.0.0.0:8080 --threads 2"});
  on_run(serve, [s] { return run_serve(*s); });
}

}  // namespace tokctl::cli
