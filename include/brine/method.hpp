// Method<Req, Resp>: a method name bound to its request and response types.
//
// Declared once in a header shared by client and server, it makes both sides agree at compile
// time:
//
//   inline constexpr brine::Method<AddRequest, AddReply> kAdd{"add"};
//   server.handle(kAdd, [](const AddRequest& r) { return AddReply{r.a + r.b}; });
//   AddReply r = client.call(kAdd, AddRequest{1, 2});
#pragma once

#include <string_view>

namespace brine {

template <class Req, class Resp>
struct Method {
  using request_type = Req;
  using response_type = Resp;
  std::string_view name;
};

}  // namespace brine
