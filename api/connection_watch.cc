#include "api/connection_watch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <vector>

namespace tidemark::api {
namespace {

// The port and numeric host of a socket address (IPv4, IPv6 or IPv4-mapped IPv6).
bool Endpoint(const sockaddr_storage& addr, std::string* host, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)) == nullptr) return false;
    *port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)) == nullptr) return false;
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *host = buf;
  return true;
}

bool SameHost(const std::string& a, const std::string& b) {
  constexpr std::string_view kMapped = "::ffff:";
  auto strip = [&](const std::string& s) {
    return s.rfind(kMapped, 0) == 0 ? s.substr(kMapped.size()) : s;
  };
  return strip(a) == strip(b);
}

}  // namespace

int FindConnectedSocket(const std::string& peer_addr, int peer_port, int local_port) {
  if (peer_port <= 0 || local_port <= 0) return -1;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    std::string local_host, peer_host;
    int lport = 0, pport = 0;
    if (!Endpoint(local, &local_host, &lport) || !Endpoint(peer, &peer_host, &pport)) continue;
    if (lport == local_port && pport == peer_port && SameHost(peer_host, peer_addr)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

ConnectionWatch::ConnectionWatch(absl::Duration interval) : interval_(interval) {}

ConnectionWatch::~ConnectionWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ConnectionWatch::Handle::~Handle() {
  if (watch_ != nullptr) watch_->Remove(this);
}

std::unique_ptr<ConnectionWatch::Handle> ConnectionWatch::Watch(const std::string& peer_addr,
                                                                int peer_port, int local_port) {
  auto handle = std::make_unique<Handle>();
  handle->fd_ = FindConnectedSocket(peer_addr, peer_port, local_port);
  if (handle->fd_ < 0) return handle;
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return handle;
  handle->watch_ = this;
  handles_.push_back(handle.get());
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  return handle;
}

void ConnectionWatch::Remove(Handle* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  handles_.remove(handle);
}

void ConnectionWatch::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<pollfd> fds;
  while (!stop_) {
    // Polling under the lock (with a zero timeout) keeps each socket open while it is polled:
    // a handle leaves the list, under the same lock, before its request's socket is closed.
    fds.clear();
    for (Handle* h : handles_) fds.push_back(pollfd{h->fd_, POLLRDHUP, 0});
    if (!fds.empty() && poll(fds.data(), fds.size(), 0) > 0) {
      size_t i = 0;
      for (Handle* h : handles_) {
        if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
          h->cancelled_.store(true, std::memory_order_relaxed);
        }
        ++i;
      }
    }
    cv_.wait_for(lock, absl::ToChronoNanoseconds(interval_), [this] { return stop_; });
  }
}

}  // namespace tidemark::api
