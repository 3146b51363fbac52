// ConnectionWatch: notices when the client of an in-flight request closes its connection, so the
// query it asked for can be cancelled (as Prometheus cancels on a closed request context).
//
// cpp-httplib 0.11 does not hand the connection's socket to handlers, nor does it say whether
// the peer is still there. A request does carry both endpoint addresses, which name the TCP
// connection uniquely, so Watch() finds the socket by matching the process's open sockets on
// (local port, peer address, peer port); the socket stays open while the handler runs. A
// background thread polls the watched sockets for POLLRDHUP/POLLHUP (the peer closed) every
// `interval` and sets the request's flag. When the socket cannot be found the flag just never
// turns true. A client that half-closes its sending side and still waits for the answer
// would be taken for gone; HTTP clients (Grafana, Go, curl, Python) do not do that.
//
// Thread-safe.
#ifndef TIDEMARK_API_CONNECTION_WATCH_H_
#define TIDEMARK_API_CONNECTION_WATCH_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"

namespace tidemark::api {

class ConnectionWatch {
 public:
  explicit ConnectionWatch(absl::Duration interval = absl::Milliseconds(100));
  ~ConnectionWatch();  // Stops the polling thread.
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // One watched request; unregisters itself when destroyed. `cancelled()` turns true once the
  // peer is gone.
  class Handle {
   public:
    ~Handle();
    const std::atomic<bool>* cancelled() const { return &cancelled_; }
    bool found() const { return fd_ >= 0; }

   private:
    friend class ConnectionWatch;
    ConnectionWatch* watch_ = nullptr;
    int fd_ = -1;
    std::atomic<bool> cancelled_{false};
  };

  // Starts watching the connection from `peer_addr:peer_port` to our `local_port`.
  std::unique_ptr<Handle> Watch(const std::string& peer_addr, int peer_port, int local_port);

 private:
  void Run();
  void Remove(Handle* handle);

  const absl::Duration interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::list<Handle*> handles_;
  bool stop_ = false;
  std::thread thread_;  // started with the first Watch
};

// The open socket of this process connected from `peer_addr:peer_port` to local port
// `local_port`, or -1. Exposed for tests.
int FindConnectedSocket(const std::string& peer_addr, int peer_port, int local_port);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_CONNECTION_WATCH_H_
