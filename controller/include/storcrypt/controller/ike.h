// storcrypt controller, IKEv2: the `ike` noun (peers and IKE SAs).
//
// The daemon's IKE service (src/ike/ike_service.h) keeps the configured
// peers in SQLite (component "ike") and runs one ike::Runner (UDP transport +
// XFRM kernel + Engine + I/O thread, ike/runner.h), started lazily: when the
// first peer is added, when a peer is brought up, or at start-up when peers
// exist. Its sockets come from storcrypt.conf (ike_listen, ike_port,
// ike_natt_port). When the port is taken (charon on the node), `ike peer
// add` / `ike peer up` fail with the transport's error and nothing else
// changes; the runner only ever touches SAs and policies in
// netlink::Ownership::ike()'s ranges, never charon's.
//
// Engine events become event-log entries (codes below): the Runner's callback
// only queues them (it runs with the Runner's mutex held); a thread of the
// service raises them.
#pragma once

#include <functional>
#include <memory>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/runner.h"

namespace storcrypt::controller {

/// Event codes of the ike noun (in the ipsec range 2000-2099).
inline constexpr int kIkeAuthFailedEvent = 2020;   ///< authentication failed (peer certificate subject/issuer, reason)
inline constexpr int kIkeUpEvent = 2021;           ///< IKE SA established
inline constexpr int kIkeDownEvent = 2022;         ///< IKE SA deleted after it was up
inline constexpr int kIkeFailedEvent = 2023;       ///< IKE SA setup failed (reason)
inline constexpr int kIkeChildFailedEvent = 2024;  ///< a CHILD_SA could not be negotiated or installed (reason)
inline constexpr int kIkeStaleClearedEvent = 2025;  ///< start-up found a killed instance's CHILD_SAs (counts)

/// The seam that starts the Runner: the daemon uses ike::Runner::start(opts,
/// cb) (real UDP sockets and netlink XFRM); unit tests put an IkeRunnerFactory
/// into the Context (Context::set_service) before the nouns are registered,
/// to run over an in-memory transport and a fake kernel
/// (ike::Runner::start(Io, ...)).
struct IkeRunnerFactory {
  std::function<Result<std::unique_ptr<ike::Runner>>(const ike::RunnerOptions&,
                                                       std::function<void(const ike::Event&)>)>
      start;
};

}  // namespace storcrypt::controller
