# Warning and sanitizer flags shared by every ringkernel target.
# rk_apply_compile_options(<target>) applies them to one target (library, test, sample, bench).

set(RK_SANITIZER_FLAGS "")
if(RK_ENABLE_TSAN AND RK_ENABLE_ASAN)
  message(FATAL_ERROR "RK_ENABLE_TSAN and RK_ENABLE_ASAN cannot be combined; configure two build trees.")
endif()
if(RK_ENABLE_TSAN)
  set(RK_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
elseif(RK_ENABLE_ASAN)
  # Separate flags, no commas: nvcc splits -Xcompiler values on commas.
  set(RK_SANITIZER_FLAGS -fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
endif()

function(rk_apply_compile_options target)
  set(host_warnings -Wall -Wextra)
  if(RK_WARNINGS_AS_ERRORS)
    list(APPEND host_warnings -Werror)
  endif()
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${host_warnings}>
    # nvcc: host-side warnings for the host pass; device diagnostics as errors for real mistakes.
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --extended-lambda --expt-relaxed-constexpr>)
  if(RK_SANITIZER_FLAGS)
    list(TRANSFORM RK_SANITIZER_FLAGS PREPEND "-Xcompiler=" OUTPUT_VARIABLE cuda_sanitizer_flags)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:${RK_SANITIZER_FLAGS}>
      $<$<COMPILE_LANGUAGE:CUDA>:${cuda_sanitizer_flags}>)
    target_link_options(${target} PRIVATE ${RK_SANITIZER_FLAGS})
  endif()
endfunction()
