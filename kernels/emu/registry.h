// The kernel tables of the emulator's two variants (sm61.cpp, sm80.cpp).
#pragma once

#include <stdint.h>
#include <string.h>

#include <utility>

struct Entry {
  const char* name;
  int nparams;
  void (*call)(const uint64_t* slots);
};

extern const Entry* const qi_emu_entries61;
extern const int qi_emu_n61;
extern const Entry* const qi_emu_entries80;
extern const int qi_emu_n80;

// Each parameter arrives in an 8-byte slot, as the Go side marshals it;
// a float occupies the slot's first 4 bytes.
template <class T>
static T qi_emu_arg(const uint64_t* s, int i) {
  T v;
  memcpy(&v, &s[i], sizeof(T));
  return v;
}

template <class... A, size_t... I>
static void qi_emu_call_seq(void (*f)(A...), const uint64_t* s, std::index_sequence<I...>) {
  f(qi_emu_arg<A>(s, (int)I)...);
}

template <class... A>
static void qi_emu_call(void (*f)(A...), const uint64_t* s) {
  qi_emu_call_seq(f, s, std::index_sequence_for<A...>{});
}

template <class... A>
static constexpr int qi_emu_arity(void (*)(A...)) {
  return (int)sizeof...(A);
}

#define QI_K(name) {#name, qi_emu_arity(&name), [](const uint64_t* s) { qi_emu_call(&name, s); }},
