// brine: typed request/reply calls between processes.
//
// This umbrella header brings the core API. Include the codec headers for the types you send:
//   #include <brine/codecs/cereal.hpp>
//   #include <brine/codecs/json.hpp>
//   #include <brine/codecs/protobuf.hpp>
#pragma once

#include "brine/buffer.hpp"
#include "brine/client.hpp"
#include "brine/codec.hpp"
#include "brine/config.hpp"
#include "brine/context.hpp"
#include "brine/interface.hpp"
#include "brine/method.hpp"
#include "brine/result.hpp"
#include "brine/server.hpp"
#include "brine/status.hpp"
#include "brine/stream.hpp"
#include "brine/task.hpp"
#include "brine/version.hpp"
