# Common settings for every target of the project.
function(chat_settings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR})
endfunction()

# chat_library(NAME SOURCES...) -> target chat_NAME, alias chat::NAME
function(chat_library name)
  add_library(chat_${name} STATIC ${ARGN})
  add_library(chat::${name} ALIAS chat_${name})
  chat_settings(chat_${name})
endfunction()

# chat_program(NAME SOURCES...) -> executable build/bin/NAME
function(chat_program name)
  add_executable(${name} ${ARGN})
  chat_settings(${name})
endfunction()

# chat_test(NAME SOURCES...) -> doctest executable, one CTest per test case
function(chat_test name)
  add_executable(${name} ${ARGN})
  chat_settings(${name})
  target_link_libraries(${name} PRIVATE doctest::doctest)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
endfunction()
