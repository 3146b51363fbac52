#include "api/query_gate.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace tidemark::api {

QueryGate::Ticket& QueryGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (gate_ != nullptr) gate_->Release();
    gate_ = other.gate_;
    other.gate_ = nullptr;
  }
  return *this;
}

QueryGate::Ticket::~Ticket() {
  if (gate_ != nullptr) gate_->Release();
}

QueryGate::QueryGate(int max_running, int max_waiting)
    : max_running_(std::max(1, max_running)), max_waiting_(std::max(0, max_waiting)) {}

absl::StatusOr<QueryGate::Ticket> QueryGate::Enter(absl::Time deadline,
                                                   const std::atomic<bool>* cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  if (waiting_ == 0 && running_ < max_running_) {
    ++running_;
    return Ticket(this);
  }
  if (waiting_ >= max_waiting_) {
    return absl::UnavailableError(
        absl::StrCat("too many concurrent queries: ", running_, " running and ", waiting_,
                     " waiting (limit ", max_running_, " running, ", max_waiting_, " waiting)"));
  }
  uint64_t number = next_number_++;
  ++waiting_;
  // Wakes periodically to notice a cancellation flag, which nobody notifies the gate about.
  constexpr auto kPoll = std::chrono::milliseconds(50);
  while (!(number == serving_number_ && running_ < max_running_)) {
    bool timed_out = absl::Now() >= deadline;
    bool gone = cancelled != nullptr && cancelled->load(std::memory_order_relaxed);
    if (timed_out || gone) {
      // Leave the line: later waiters move up by one. The numbers stay consecutive by letting
      // the serving number skip ours when our turn comes (tracked through `abandoned_`).
      --waiting_;
      abandoned_.push_back(number);
      SkipAbandoned();
      cv_.notify_all();
      if (gone) return absl::CancelledError("query was canceled in query queue");
      return absl::DeadlineExceededError("query timed out in query queue");
    }
    auto wait = std::min<absl::Duration>(absl::FromChrono(kPoll), deadline - absl::Now());
    cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(wait, absl::ZeroDuration())));
  }
  --waiting_;
  ++serving_number_;
  SkipAbandoned();
  ++running_;
  cv_.notify_all();
  return Ticket(this);
}

void QueryGate::SkipAbandoned() {
  bool moved = true;
  while (moved) {
    moved = false;
    for (size_t i = 0; i < abandoned_.size(); ++i) {
      if (abandoned_[i] == serving_number_) {
        abandoned_.erase(abandoned_.begin() + static_cast<std::ptrdiff_t>(i));
        ++serving_number_;
        moved = true;
        break;
      }
    }
  }
}

void QueryGate::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
  }
  cv_.notify_all();
}

int QueryGate::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

int QueryGate::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

}  // namespace tidemark::api
