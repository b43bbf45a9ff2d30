#pragma once
// One register_<cmd>() per subcommand file.

namespace CLI {
class App;
}

namespace tokctl::cli {

void register_decode(CLI::App& app);
void register_sign(CLI::App& app);
void register_verify(CLI::App& app);
void register_encrypt(CLI::App& app);
void register_decrypt(CLI::App& app);
void register_keys(CLI::App& app);
void register_completion(CLI::App& app);
void register_keystore_commands(CLI::App* keys);
void register_config(CLI::App& app);
void register_issue(CLI::App& app);
void register_introspect(CLI::App& app);
void register_revoke(CLI::App& app);
void register_split(CLI::App& app);
void register_store(CLI::App& app);
void register_exchange(CLI::App& app);
void register_clients(CLI::App& app);
void register_serve(CLI::App& app);

}  // namespace tokctl::cli
