# Cap'n Proto's side of brine_bench: an echo of one byte string (bench/peers/capnp_server.cpp).
@0xa3ce25bd3842c716;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("brine_bench::peer");

interface Echo {
  echo @0 (data :Data) -> (data :Data);
}
