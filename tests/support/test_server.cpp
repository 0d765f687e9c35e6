#include "test_server.hpp"

#include "transports.hpp"

#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace brine_test {

std::string listen_uri(const std::string& transport) {
  static std::atomic<int> counter{0};
  const std::string unique = std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::string uri = test_transport(transport).uri;
  if (const auto at = uri.find("%u"); at != std::string::npos) uri.replace(at, 2, unique);
  return uri;
}

namespace {

template <class F>
void register_family(brine::Server& server, std::shared_ptr<std::atomic<int>> counted,
                     std::shared_ptr<std::atomic<int>> saw_cancel,
                     std::shared_ptr<std::atomic<int>> running,
                     const brine::HandlerOptions& options) {
  using Blob = typename F::Blob;
  using Number = typename F::Number;
  server.handle(
      "echo", [](const Blob& b) { return b; }, options);
  // Throws RpcError with the code given in the request.
  server.handle(
      "fail_with",
      [](const Number& n) -> Number {
        throw brine::RpcError(brine::StatusCode(std::uint32_t(F::value(n))), "failed on purpose");
      },
      options);
  server.handle(
      "throw_int", [](const Number&) -> Number { throw 42; }, options);
  // Throws an INTERNAL error whose message is n bytes long.
  server.handle(
      "fail_long",
      [](const Number& n) -> Number {
        throw brine::RpcError(brine::StatusCode::internal,
                              std::string(std::size_t(F::value(n)), 'e'));
      },
      options);
  server.handle(
      "count",
      [counted](const Number& n) {
        counted->fetch_add(int(F::value(n)));
        return n;
      },
      options);
  server.handle(
      "inflate",
      [](const Number& n) { return F::blob(std::string(std::size_t(F::value(n)), 'i')); }, options);
  // Answers bytes that no codec decodes as a Number.
  server.handle(
      "garbage", [](const Number&) { return Raw{"\xFF\xFF\xFF"}; }, options);
  server.handle(
      "counted", [counted](const Number&) { return F::number(counted->load()); }, options);
  // Runs until the caller cancels (counted in saw_cancel) or n milliseconds pass.
  server.handle(
      "until_cancelled",
      [saw_cancel, running](const Number& n) {
        running->fetch_add(1);
        const auto end =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(std::int64_t(F::value(n)));
        while (std::chrono::steady_clock::now() < end) {
          if (brine::this_call::cancelled()) {
            saw_cancel->fetch_add(1);
            throw brine::RpcError(brine::StatusCode::cancelled, "cancelled");
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return n;
      },
      options);
  // The wire id of the codec the request came in.
  server.handle(
      "codec", [](const Number&) { return F::number(double(*brine::this_call::codec())); },
      options);
  // The caller's time left, in milliseconds, as the handler sees it.
  server.handle(
      "time_left",
      [](const Number&) { return F::number(double(brine::this_call::time_left().count())); },
      options);
}

}  // namespace

namespace {
// The test certificate, unless the test chose its own.
brine::ServerOptions with_tls(brine::ServerOptions options) {
  if (options.tls.certificate_file.empty()) {
    options.tls.certificate_file = tls_paths().server_crt;
    options.tls.private_key_file = tls_paths().server_key;
  }
  return options;
}
}  // namespace

std::string TestServer::listen(const std::string& transport) {
  if (test_transport(transport).tls) (void)tls_files();  // made on first use
  return server.listen(listen_uri(transport));
}

TestServer::TestServer(brine::ServerOptions options) : server(with_tls(std::move(options))) {
  calc::register_calculator(server);
  register_family<CerealFamily>(server, counted, saw_cancel, running_cancellable, {});
  register_family<ProtobufFamily>(server, counted, saw_cancel, running_cancellable,
                                  {.codecs = {brine::CodecId::protobuf}});
  server.start();
}

// The Server's destructor stops at once (no drain): a test that wants the graceful stop calls
// server.stop() itself.
TestServer::~TestServer() = default;

}  // namespace brine_test
