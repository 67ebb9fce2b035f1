# The `layering` test: which folder may include which (STYLE.md 6 and 8).
#
#   cmake -DSOURCE_DIR=<repository> -P tests/layering.cmake
#
# Every target has the source directory on its include path, so that an
# include reads the same everywhere ("actors/messages.hpp"); the compiler
# would therefore let any folder include any other. Giving each target only
# the folders it links would take an include/<name>/ level in every folder
# (moving every header) for the same guarantee. This script reads the
# #include lines instead and fails, naming file and include, when:
#
#   - a folder includes a project folder below which it does not sit
#     (protocol must not include actors, actors not persistence, ai or
#     gateway, persistence and ai not gateway nor each other, ...);
#   - common/, protocol/ or actors/ include Beast/Asio, libpqxx or libcurl,
#     which stay private to gateway/, persistence/ and ai/;
#   - a file outside actors/ includes actors/detail/ (the conversation
#     actor's internal headers);
#   - an include climbs out with "../" (includes are rooted at the source
#     directory, or the checks above could be walked around).
#
# gateway/ (the program), tests/, bench/ and web/ sit on top: only the last
# two rules apply to them.

cmake_minimum_required(VERSION 3.18)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "usage: cmake -DSOURCE_DIR=<repository> -P layering.cmake")
endif()

# Lowest first. A folder may include its own headers and those listed here.
set(allowed_common common)
set(allowed_protocol common protocol)
set(allowed_actors common protocol actors)
set(allowed_persistence common protocol actors persistence)
set(allowed_ai common protocol actors ai)
set(layered_folders common protocol actors persistence ai)
set(all_folders ${layered_folders} gateway web tests bench)

# I/O libraries, private to the folders that wrap them.
set(io_libraries "boost/beast" "boost/asio" "pqxx" "curl")
set(io_free_folders common protocol actors)

set(violations "")
foreach(folder IN LISTS all_folders)
  file(GLOB_RECURSE files LIST_DIRECTORIES false
       ${SOURCE_DIR}/${folder}/*.hpp ${SOURCE_DIR}/${folder}/*.cpp
       ${SOURCE_DIR}/${folder}/*.h ${SOURCE_DIR}/${folder}/*.in)
  list(FILTER files EXCLUDE REGEX "/node_modules/")
  foreach(file IN LISTS files)
    file(RELATIVE_PATH name ${SOURCE_DIR} ${file})
    file(STRINGS ${file} includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]*)[>\"].*" "\\1" path
                           "${line}")
      set(why "")
      if(path MATCHES "(^|/)\\.\\./")
        set(why "climbs out with ../")
      elseif(path MATCHES "^actors/detail/" AND NOT folder STREQUAL "actors")
        set(why "actors/detail/ is internal to actors/")
      elseif(folder IN_LIST layered_folders AND path MATCHES "^([A-Za-z0-9_]+)/")
        set(top ${CMAKE_MATCH_1})
        if(top IN_LIST all_folders AND NOT top IN_LIST allowed_${folder})
          set(why "${folder}/ must not include ${top}/")
        endif()
      endif()
      if(why STREQUAL "" AND folder IN_LIST io_free_folders)
        foreach(lib IN LISTS io_libraries)
          if(path MATCHES "^${lib}(/|\\.|$)")
            set(why "${lib} stays out of ${folder}/")
          endif()
        endforeach()
      endif()
      if(NOT why STREQUAL "")
        list(APPEND violations "${name}: #include ${path}: ${why}")
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "layering violated:\n  ${text}")
endif()
message(STATUS "layering: ok")
