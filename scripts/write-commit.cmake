# Writes OUTPUT, a header defining SDGEN_GIT_COMMIT for `sdgen bench` records, at every build:
# FIXED when given (a copy of the tree without .git, e.g. on the GPU machine), else the short
# commit of SOURCE_DIR's HEAD, with "-dirty" when the work tree differs from it. The file is
# rewritten only when the value changes, so nothing recompiles otherwise.
if(FIXED)
  set(commit "${FIXED}")
else()
  execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY "${SOURCE_DIR}"
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT commit)
    set(commit unknown)
  else()
    execute_process(COMMAND git diff --quiet HEAD -- WORKING_DIRECTORY "${SOURCE_DIR}"
                    RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
set(content "#define SDGEN_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUTPUT}" "${content}")
endif()
