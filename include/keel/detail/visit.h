// How the structures call a user's visitor: f returns bool (false stops the
// walk) or void (never stops).
#pragma once

#include <type_traits>
#include <utility>

namespace keel::detail {

template <class F, class... A>
bool keep_going(F& f, A&&... args) {
  if constexpr (std::is_same_v<std::invoke_result_t<F&, A...>, bool>) {
    return f(std::forward<A>(args)...);
  } else {
    f(std::forward<A>(args)...);
    return true;
  }
}

}  // namespace keel::detail
