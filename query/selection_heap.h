// SelectionHeap: the heap topk/bottomk keep per group, with Go's container/heap algorithms and
// Prometheus's orderings, so that ties and NaNs resolve exactly as in Prometheus. Over pointers
// to any element type with a `double v` member; the elements must outlive the heap.
// Internal to query/.
#ifndef TIDEMARK_QUERY_SELECTION_HEAP_H_
#define TIDEMARK_QUERY_SELECTION_HEAP_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace tidemark::promql::internal {

// A min-heap (topk) or max-heap (bottomk) of input elements with Go's container/heap
// algorithms, so that ties and NaNs resolve exactly as in Prometheus.
template <typename T>
class SelectionHeap {
 public:
  explicit SelectionHeap(bool bottom) : bottom_(bottom) {}

  // Prometheus's vectorByValueHeap / vectorByReverseValueHeap ordering; NaN is "least".
  bool Less(size_t i, size_t j) const {
    double a = items_[i]->v, b = items_[j]->v;
    if (std::isnan(a)) return true;
    return bottom_ ? a > b : a < b;
  }

  size_t size() const { return items_.size(); }
  const T* top() const { return items_[0]; }
  void ReplaceTop(const T* e) { items_[0] = e; }

  void Push(const T* e) {
    items_.push_back(e);
    Up(items_.size() - 1);
  }

  // One input element for a non-empty heap of at most `k` elements, as Prometheus's topk and
  // bottomk take it: kept when there is room, when it beats the top or when the top is NaN.
  void Offer(const T* e, int64_t k) {
    double top = items_[0]->v;
    bool better = bottom_ ? top > e->v : top < e->v;
    if (static_cast<int64_t>(items_.size()) < k || better || std::isnan(top)) {
      if (static_cast<int64_t>(items_.size()) == k) {
        if (k == 1) {
          ReplaceTop(e);
          return;
        }
        Pop();
      }
      Push(e);
    }
  }

  void Pop() {
    size_t n = items_.size() - 1;
    std::swap(items_[0], items_[n]);
    Down(0, n);
    items_.pop_back();
  }

  // The elements in the order of sort.Sort(sort.Reverse(heap)): highest (topk) or lowest
  // (bottomk) first. Go sorts up to 12 elements with a (stable) insertion sort under the
  // reversed Less; we reproduce that, and sort longer heaps stably with NaNs last.
  std::vector<const T*> SortedOutput() {
    std::vector<const T*>& d = items_;
    auto rev_less = [this](const T* x, const T* y) {
      // Reverse(heap).Less(x, y) == heap.Less(y, x).
      if (std::isnan(y->v)) return true;
      return bottom_ ? y->v > x->v : y->v < x->v;
    };
    if (d.size() <= 12) {
      for (size_t i = 1; i < d.size(); ++i) {
        for (size_t j = i; j > 0 && rev_less(d[j], d[j - 1]); --j) std::swap(d[j], d[j - 1]);
      }
    } else {
      std::stable_sort(d.begin(), d.end(), [this](const T* x, const T* y) {
        if (std::isnan(x->v)) return false;
        if (std::isnan(y->v)) return true;
        return bottom_ ? x->v < y->v : x->v > y->v;
      });
    }
    return d;
  }

 private:
  void Up(size_t j) {
    while (j > 0) {
      size_t i = (j - 1) / 2;
      if (!Less(j, i)) break;
      std::swap(items_[i], items_[j]);
      j = i;
    }
  }

  void Down(size_t i, size_t n) {
    while (true) {
      size_t j1 = 2 * i + 1;
      if (j1 >= n) break;
      size_t j = j1;
      if (size_t j2 = j1 + 1; j2 < n && Less(j2, j1)) j = j2;
      if (!Less(j, i)) break;
      std::swap(items_[i], items_[j]);
      i = j;
    }
  }

  bool bottom_;
  std::vector<const T*> items_;
};

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_SELECTION_HEAP_H_
