# Builds TARGET in BRINE_BUILD_DIR and passes only when the build fails with exactly one compiler
# error, whose text matches EXPECT, in fewer than MAX_LINES lines of compiler output (issue 13:
# a mistake gives one short error, not pages).
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BRINE_BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but must not")
endif()
string(REGEX MATCHALL "error: " errors "${out}")
list(LENGTH errors n)
string(REGEX MATCHALL "\n" lines "${out}")
list(LENGTH lines line_count)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "${TARGET}: ${n} errors (want 1):\n${out}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "${TARGET}: the error does not match '${EXPECT}':\n${out}")
endif()
if(line_count GREATER_EQUAL MAX_LINES)
  message(FATAL_ERROR "${TARGET}: ${line_count} lines of output (want < ${MAX_LINES}):\n${out}")
endif()
message(STATUS "${TARGET}: one error in ${line_count} lines")
