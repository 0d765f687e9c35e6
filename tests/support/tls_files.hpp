// Throwaway certificates for the TLS tests, made with the openssl command on first use, in a
// directory this user's test processes of the same hour share (/tmp/brine-tls-<uid>-<hour>;
// older ones are removed after three hours).
#pragma once

#include <string>

namespace brine_test {

struct TlsFiles {
  std::string ca;          // the CA the clients trust
  std::string server_crt;  // localhost, 127.0.0.1 and ::1, signed by `ca`
  std::string server_key;
  std::string other_ca;     // a CA nobody's certificate is signed by
  std::string expired_crt;  // like server_crt, expired yesterday
  std::string expired_key;
  std::string other_name_crt;  // signed by `ca`, for other.example only
  std::string other_name_key;
  std::string client_crt;  // a client certificate signed by `ca`
  std::string client_key;
};

// The paths (files may not exist yet).
const TlsFiles& tls_paths();
// The paths, the files made if they are not. Throws std::runtime_error if openssl fails.
const TlsFiles& tls_files();

}  // namespace brine_test
