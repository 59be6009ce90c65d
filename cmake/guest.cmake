# hvcore_guest(<name> <source> <load-address>)
#
# Builds a freestanding guest program from assembly (.S) or C into a flat
# binary, ${CMAKE_CURRENT_BINARY_DIR}/guests/<name>.bin, loaded at
# <load-address>. Guests are built with the plain compiler and explicit flags:
# none of the project's flags (sanitizers, say) may reach guest code.
# A target named guest-<name> builds it.
function(hvcore_guest name source address)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/guests)
  set(elf ${out_dir}/${name}.elf)
  set(bin ${out_dir}/${name}.bin)
  get_filename_component(src ${source} ABSOLUTE)
  get_filename_component(src_dir ${src} DIRECTORY)
  file(GLOB headers ${src_dir}/*.h) # guests include their own headers only
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${CMAKE_C_COMPILER} -nostdlib -ffreestanding -fno-pic -no-pie
            -static -fno-stack-protector -fno-asynchronous-unwind-tables
            -mno-red-zone -O2 -Wl,--build-id=none -Wl,-Ttext=${address}
            -Wl,-e,_start -Wl,-z,noexecstack -o ${elf} ${src}
    COMMAND ${CMAKE_OBJCOPY} -O binary ${elf} ${bin}
    DEPENDS ${src} ${headers}
    COMMENT "Building guest ${name}"
    VERBATIM)
  add_custom_target(guest-${name} DEPENDS ${bin})
endfunction()
