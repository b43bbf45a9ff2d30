// libcurl transport with retries, and the on-disk document cache.

#include <tokctl/remote/http.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <thread>
#include <type_traits>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/utf8.hpp>

namespace tokctl::remote {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// libcurl is loaded on first use (dlopen), not linked: with its ~28 dependent libraries (GnuTLS,
// Kerberos, LDAP, ...) it more than doubled the dynamic loader's work for every command, while only
// remote mode needs it (measured: one-shot `verify` 24 -> 40 ms with it linked). The functions
// below are all tokctl uses; the types and constants still come from curl/curl.h.
struct CurlApi {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

constexpr const char* k_libcurl = "libcurl.so.4";

// The API, or nullptr with the reason in `error`. Loaded and initialised once per process.
const CurlApi* curl_api(std::string& error) {
  static std::once_flag once;
  static CurlApi api{};
  static std::string load_error;
  std::call_once(once, [] {
    void* lib = ::dlopen(k_libcurl, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      load_error = why ? why : "dlopen failed";
      return;
    }
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      void* p = ::dlsym(lib, name);
      if (!p) {
        ok = false;
        load_error = std::string(k_libcurl) + " has no " + name;
      }
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
    sym(api.global_init, "curl_global_init");
    sym(api.easy_init, "curl_easy_init");
    sym(api.easy_cleanup, "curl_easy_cleanup");
    sym(api.easy_reset, "curl_easy_reset");
    sym(api.easy_setopt, "curl_easy_setopt");
    sym(api.easy_perform, "curl_easy_perform");
    sym(api.easy_getinfo, "curl_easy_getinfo");
    sym(api.easy_strerror, "curl_easy_strerror");
    sym(api.slist_append, "curl_slist_append");
    sym(api.slist_free_all, "curl_slist_free_all");
    if (ok && api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      ok = false;
      load_error = "curl_global_init failed";
    }
    if (!ok) api.easy_init = nullptr;  // never used half-loaded; the library stays (dlclose is unsafe)
  });
  if (!api.easy_init) {
    error = load_error;
    return nullptr;
  }
  return &api;
}

// Transport errors worth another attempt of an idempotent request; TLS and certificate
// failures are not (they will fail the same way).
bool transient(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return true;
    default:
      return false;
  }
}

Result<void> readable(const std::string& path, const char* what) {
  if (path.empty()) return {};
  auto data = read_input(path);
  if (!data) return fail(ErrorCode::usage, std::string(what) + " '" + path + "': " + data.error().message);
  return {};
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

std::string HttpResponse::header_list(std::string_view name) const {
  std::string out;
  for (const auto& [k, v] : headers) {
    if (k != name) continue;
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

std::string HttpResponse::media_type() const {
  std::string ct = header("content-type");
  auto semi = ct.find(';');
  return lower(trim(std::string_view(ct).substr(0, semi)));
}

struct HttpClient::Impl {
  TransportOptions options;
  const CurlApi* api = nullptr;
  CURL* curl = nullptr;
  ~Impl() {
    if (curl) api->easy_cleanup(curl);
  }

  // One attempt; the response or curl's code and reason.
  struct Attempt {
    CURLcode rc = CURLE_OK;
    std::string reason;
    HttpResponse response;
  };

  struct Sink {
    HttpResponse* response;
    std::size_t limit;
    bool too_big = false;
  };

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* sink = static_cast<Sink*>(user);
    const std::size_t bytes = size * n;
    if (sink->response->body.size() + bytes > sink->limit) {
      sink->too_big = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    sink->response->body.append(data, bytes);
    return bytes;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* sink = static_cast<Sink*>(user);
    const std::size_t bytes = size * n;
    std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
      sink->response->headers.clear();  // a new response (redirect, 100 Continue)
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      if (sink->response->headers.size() < 200) {
        sink->response->headers.emplace_back(lower(trim(line.substr(0, colon))),
                                             std::string(trim(line.substr(colon + 1))));
      }
    }
    return bytes;
  }

  Attempt perform(const HttpRequest& req) {
    Attempt a;
    api->easy_reset(curl);  // keeps the connection cache
    char errbuf[CURL_ERROR_SIZE] = {};
    Sink sink{&a.response, options.max_response_bytes};
    api->easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    api->easy_setopt(curl, CURLOPT_URL, req.url.c_str());
    api->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    api->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    api->easy_setopt(curl, CURLOPT_TIMEOUT_MS, options.timeout_ms);
    api->easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
    api->easy_setopt(curl, CURLOPT_USERAGENT, "tokctl/" TOKCTL_VERSION);
    api->easy_setopt(curl, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    api->easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    api->easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    api->easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    api->easy_setopt(curl, CURLOPT_HEADERDATA, &sink);
    api->easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_response_bytes));
    if (!options.cacert.empty()) api->easy_setopt(curl, CURLOPT_CAINFO, options.cacert.c_str());
    if (options.insecure) {
      api->easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      api->easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!options.cert.empty()) api->easy_setopt(curl, CURLOPT_SSLCERT, options.cert.c_str());
    if (!options.key.empty()) api->easy_setopt(curl, CURLOPT_SSLKEY, options.key.c_str());
    if (req.method == "GET") {
      // Discovery and JWKS may redirect (https stays https); OAuth POSTs never follow.
      api->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
      api->easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
      api->easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, is_https_url(req.url) ? "https" : "http,https");
    } else if (req.method == "POST") {
      api->easy_setopt(curl, CURLOPT_POST, 1L);
      api->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      api->easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
    } else {
      api->easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    curl_slist* headers = nullptr;
    for (const auto& [k, v] : req.headers) headers = api->slist_append(headers, (k + ": " + v).c_str());
    headers = api->slist_append(headers, "Expect:");  // no 100-continue round trip
    api->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    a.rc = api->easy_perform(curl);
    api->slist_free_all(headers);
    if (a.rc == CURLE_OK) {
      api->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a.response.status);
      char* eff = nullptr;
      api->easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff);
      a.response.url = eff ? eff : req.url;
    } else if (sink.too_big || a.rc == CURLE_FILESIZE_EXCEEDED) {
      a.reason = "the response is larger than " + std::to_string(options.max_response_bytes) + " bytes";
    } else {
      a.reason = errbuf[0] ? std::string(errbuf) : std::string(api->easy_strerror(a.rc));
    }
    api->easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    return a;
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : m(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() = default;

Result<HttpClient> HttpClient::create(TransportOptions options) {
  if (auto r = readable(options.cacert, "CA bundle"); !r) return std::unexpected(r.error());
  if (auto r = readable(options.cert, "client certificate"); !r) return std::unexpected(r.error());
  if (auto r = readable(options.key, "client certificate key"); !r) return std::unexpected(r.error());
  if (options.cert.empty() != options.key.empty()) {
    return fail(ErrorCode::usage, "a client certificate needs both the certificate and its key");
  }
  std::string why;
  const CurlApi* api = curl_api(why);
  if (!api) {
    return fail(ErrorCode::network, "remote mode needs libcurl (" + std::string(k_libcurl) + "): " + why,
                "install it (Debian: apt-get install libcurl4)");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->api = api;
  impl->curl = api->easy_init();
  if (!impl->curl) return fail(ErrorCode::network, "libcurl could not start a transfer handle");
  return HttpClient(std::move(impl));
}

Result<HttpResponse> HttpClient::send(const HttpRequest& request) {
  if (!is_http_url(request.url)) {
    return fail(ErrorCode::usage, "'" + redact_url(request.url) + "' is not an http:// or https:// URL");
  }
  const int tries = request.idempotent ? 1 + std::max(0, m->options.retries) : 1;
  long pause = std::max(0L, m->options.backoff_ms);
  for (int attempt = 1;; ++attempt) {
    Impl::Attempt a = m->perform(request);
    const bool again = attempt < tries &&
                       (a.rc == CURLE_OK ? a.response.status >= 500 : transient(a.rc));
    if (!again) {
      if (a.rc != CURLE_OK) {
        std::string msg = request.method + " " + redact_url(request.url) + ": " + a.reason;
        if (attempt > 1) msg += " (after " + std::to_string(attempt) + " attempts)";
        std::string hint;
        ErrorCode code = ErrorCode::network;
        if (a.rc == CURLE_PEER_FAILED_VERIFICATION) {
          hint = "the server's certificate is not trusted: name its CA bundle";
        } else if (a.rc == CURLE_SSL_CACERT_BADFILE || a.rc == CURLE_SSL_CERTPROBLEM || a.rc == CURLE_SSL_CIPHER) {
          // What this side was given cannot be used (a CA bundle or client certificate that is not
          // PEM): a usage error, like a missing file, not a network failure.
          code = ErrorCode::usage;
          hint = "check the CA bundle and client certificate files given: they must be PEM";
        } else if (a.rc == CURLE_UNSUPPORTED_PROTOCOL) {
          // The URL given is http(s) (checked above): the server redirected to another scheme (or
          // an https server to http), which is the server's answer, not the caller's mistake.
          hint = "the server redirected to a URL that is not followed (only http(s), and from https only to https)";
        } else if (a.rc == CURLE_URL_MALFORMAT) {
          code = ErrorCode::usage;  // a port out of range, a bad host: the URL, not the network
          hint = "check the URL";
        }
        return fail(code, std::move(msg), std::move(hint));
      }
      return std::move(a.response);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
    pause = std::min(pause * 2, 5000L);
  }
}

std::string form_urlencode(std::string_view text) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    }
  }
  return out;
}

std::string form_body(const Fields& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += form_urlencode(k);
    out += '=';
    out += form_urlencode(v);
  }
  return out;
}

std::string basic_authorization(std::string_view client_id, std::string_view secret) {
  return "Basic " + b64_encode(form_urlencode(client_id) + ":" + form_urlencode(secret));
}

bool is_http_url(std::string_view url) {
  std::string l = lower(url.substr(0, 8));
  std::size_t host = l.starts_with("https://") ? 8 : l.starts_with("http://") ? 7 : 0;
  if (host == 0 || url.size() <= host) return false;
  char c = url[host];
  return c != '/' && c != '?' && c != '#' && url.find_first_of(" \t\r\n") == std::string_view::npos;
}

bool is_https_url(std::string_view url) { return lower(url.substr(0, 8)) == "https://"; }

bool has_userinfo(std::string_view url) { return redact_url(url).size() != url.size(); }

std::string redact_url(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  auto start = scheme + 3;
  auto end = url.find_first_of("/?#", start);
  auto at = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + std::string(url.substr(start + at + 1));
}

CacheControl parse_cache_control(std::string_view value) {
  CacheControl cc;
  std::size_t pos = 0;
  while (pos <= value.size()) {
    auto comma = value.find(',', pos);
    std::string_view part = trim(value.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    auto eq = part.find('=');
    std::string name = lower(trim(part.substr(0, eq)));
    std::string_view arg = eq == std::string_view::npos ? std::string_view{} : trim(part.substr(eq + 1));
    if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') arg = arg.substr(1, arg.size() - 2);
    if (name == "no-store") {
      cc.no_store = true;
    } else if (name == "no-cache") {
      cc.no_cache = true;
    } else if (name == "max-age" && !arg.empty() && arg.size() <= 10 &&
               std::all_of(arg.begin(), arg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      cc.max_age = std::stoll(std::string(arg));
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return cc;
}

namespace {

// Cache entries hold a document of at most the transport's 1 MiB, JSON-escaped.
const jose::JsonLimits k_entry_limits{std::size_t{8} << 20, 16};

// Freshness of a 200/304 answer fetched at `now`; nullopt for no-store. The Age a shared cache
// reports is already spent (RFC 9111 §4.2.3).
std::optional<UnixTime> expiry(const HttpResponse& r, UnixTime now) {
  CacheControl cc = parse_cache_control(r.header_list("cache-control"));
  if (cc.no_store) return std::nullopt;
  if (cc.no_cache) return now;
  if (!cc.max_age) return now + k_default_freshness;
  std::int64_t age = 0;
  if (std::string a = r.header("age"); !a.empty() && a.size() <= 10 &&
                                        std::all_of(a.begin(), a.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    age = std::stoll(a);
  }
  return now + std::max<std::int64_t>(0, std::min<std::int64_t>(*cc.max_age, 366 * 86400) - age);
}

}  // namespace

std::string DocumentCache::path(const std::string& url) const {
  return m_dir + "/" + hex_encode(jose::sha256(m_trust + "\n" + url)) + ".json";
}

bool DocumentCache::usable() const {
  if (m_dir.empty()) return false;
  struct stat st{};
  if (::stat(m_dir.c_str(), &st) != 0) return true;  // not there yet: store() creates it 0700
  return S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 022) == 0;
}

void DocumentCache::erase(const std::string& url) const {
  if (usable()) ::unlink(path(url).c_str());
}

std::optional<CachedDocument> DocumentCache::load(const std::string& url) const {
  if (!usable()) return std::nullopt;
  auto text = read_input(path(url), k_entry_limits.max_bytes);
  if (!text) return std::nullopt;
  auto j = jose::parse_json_object(*text, "cache entry", k_entry_limits);
  if (!j) return std::nullopt;
  const std::string* u = jose::string_member(*j, "url");
  const std::string* body = jose::string_member(*j, "body");
  if (!u || *u != url || !body) return std::nullopt;
  CachedDocument d;
  d.url = url;
  d.body = *body;
  d.etag = jose::string_or(*j, "etag");
  d.fetched_at = jose::integer_member(*j, "fetched_at").value_or(0);
  d.expires_at = jose::integer_member(*j, "expires_at").value_or(0);
  d.refetched_at = jose::integer_member(*j, "refetched_at").value_or(0);
  return d;
}

Result<void> DocumentCache::store(const CachedDocument& doc) const {
  if (m_dir.empty()) return {};
  if (auto made = make_directories(m_dir, 0700); !made) return made;
  if (!usable()) return fail(ErrorCode::keystore, "the cache directory '" + m_dir + "' is not private to this user");
  nlohmann::json j = {{"url", doc.url},           {"etag", doc.etag},
                      {"fetched_at", doc.fetched_at}, {"expires_at", doc.expires_at},
                      {"refetched_at", doc.refetched_at}, {"body", doc.body}};
  return write_file_atomic(path(doc.url), j.dump(), 0600);
}

Result<CachedDocument> fetch_document(HttpClient& http, const DocumentCache& cache, const std::string& url,
                                      UnixTime now, FetchMode mode, std::string_view accept) {
  std::optional<CachedDocument> cached = cache.load(url);
  if (mode == FetchMode::offline) {
    if (!cached) return fail(ErrorCode::network, "offline, and no cached copy of " + redact_url(url));
    cached->from_cache = true;
    return *cached;
  }
  if (cached && mode == FetchMode::normal && now < cached->expires_at) {
    cached->from_cache = true;
    return *cached;
  }
  HttpRequest req;
  req.url = url;
  req.headers.emplace_back("Accept", std::string(accept));
  if (cached && !cached->etag.empty()) req.headers.emplace_back("If-None-Match", cached->etag);
  auto resp = http.send(req);
  if (!resp) return std::unexpected(resp.error());
  CachedDocument doc;
  if (resp->status == 304 && cached) {
    doc = std::move(*cached);
    doc.revalidated = true;
    if (std::string etag = resp->header("etag"); !etag.empty()) doc.etag = std::move(etag);
  } else if (resp->status == 200) {
    // JSON is UTF-8 (RFC 8259 §8.1): a body that is not is no document, refused here before it
    // reaches the cache (whose entry is itself JSON) or a parser.
    if (const std::size_t at = utf8_error_offset(resp->body); at != resp->body.size()) {
      return fail(ErrorCode::network, "GET " + redact_url(url) + ": the answer is not UTF-8 text (byte " +
                                          std::to_string(at + 1) + "), so it is no JSON document");
    }
    doc.url = url;
    doc.body = std::move(resp->body);
    doc.etag = resp->header("etag");
    if (cached) doc.refetched_at = cached->refetched_at;  // the refetch limit outlives the body
  } else {
    Error e{ErrorCode::network, "GET " + redact_url(url) + ": HTTP " + std::to_string(resp->status), {}};
    if (resp->status >= 400 && resp->status < 500) e.detail = ErrorDetail::http_4xx;
    return std::unexpected(e);
  }
  doc.fetched_at = now;
  if (mode == FetchMode::refresh) doc.refetched_at = now;
  auto until = expiry(*resp, now);
  if (until) {
    doc.expires_at = *until;
    (void)cache.store(doc);  // a read-only cache directory costs a refetch next time, nothing more
  } else if (cached) {
    cache.erase(url);  // no-store: not even --offline may serve the old copy
  }
  return doc;
}

}  // namespace tokctl::remote
