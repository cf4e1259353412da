# The layers of kaharness, as static libraries whose link lines are the floors of
# the house (docs/architecture.md): a library may use only what it links. So that
# the linker, not a reviewer, catches a call that runs back up, every layer also
# gets a small executable, kah_layer_check_<name>, that links the whole archive of
# the layer (every object, used or not) against only the layers it declares: any
# symbol it takes from a higher layer is then an undefined reference, and the build
# fails. Includes that run upward are caught by the unit test "layers".
#
#   kah_layer(NAME name SOURCES a.cc b.cc DEPENDS kah::lower ... [PRIVATE_DEPENDS pkg ...])
set(KAH_LAYER_CHECK_MAIN ${CMAKE_CURRENT_LIST_DIR}/layer_check_main.cc)

function(kah_layer)
  cmake_parse_arguments(L "" "NAME" "SOURCES;DEPENDS;PRIVATE_DEPENDS" ${ARGN})
  set(target kah_${L_NAME})
  add_library(${target} STATIC ${L_SOURCES})
  add_library(kah::${L_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${target} PRIVATE ${KAH_WARNINGS})
  target_link_libraries(${target} PUBLIC ${L_DEPENDS} PRIVATE ${L_PRIVATE_DEPENDS})
  set_property(GLOBAL APPEND PROPERTY KAH_LAYERS ${L_NAME})

  add_executable(kah_layer_check_${L_NAME} ${KAH_LAYER_CHECK_MAIN})
  target_link_libraries(kah_layer_check_${L_NAME} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${target}>")
endfunction()
