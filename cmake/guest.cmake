set(HVCORE_GUEST_LD ${CMAKE_CURRENT_LIST_DIR}/guest.ld)
set(HVCORE_ELF_GUEST_LD ${CMAKE_CURRENT_LIST_DIR}/guest-elf.ld)
# gcc builds position-independent executables by default and needs -no-pie;
# clang, which does not, rejects the flag as unused under -Werror.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(HVCORE_GUEST_NO_PIE "")
else()
  set(HVCORE_GUEST_NO_PIE -no-pie)
endif()

# hvcore_guest(<name> <source> <load-address>)
#
# Builds a freestanding guest program from assembly (.S) or C into a flat
# binary, ${CMAKE_CURRENT_BINARY_DIR}/guests/<name>.bin, loaded at
# <load-address> and entered at its first byte (cmake/guest.ld puts the
# section .text.entry, or an assembly file's .text, first). Guests are built with the plain compiler and explicit flags:
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
    COMMAND ${CMAKE_C_COMPILER} -nostdlib -ffreestanding -fno-pic
            ${HVCORE_GUEST_NO_PIE}
            -static -fno-stack-protector -fno-asynchronous-unwind-tables
            -mno-red-zone -O2 -Wl,--build-id=none
            -Wl,-T,${HVCORE_GUEST_LD} -Wl,--defsym=hvcore_guest_load=${address}
            -Wl,-z,noexecstack -o ${elf} ${src}
    COMMAND ${CMAKE_OBJCOPY} -O binary ${elf} ${bin}
    DEPENDS ${src} ${headers} ${HVCORE_GUEST_LD}
    COMMENT "Building guest ${name}"
    VERBATIM)
  add_custom_target(guest-${name} DEPENDS ${bin})
endfunction()

# hvcore_elf_guest(<name> <32|64> <load-address> <source>)
#
# Builds a freestanding ELF guest (ELF32 or ELF64, entry _start or a PVH
# note), ${CMAKE_CURRENT_BINARY_DIR}/guests/<name>.elf, for the loader
# tests. Target: guest-<name>.
function(hvcore_elf_guest name bits address source)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/guests)
  set(elf ${out_dir}/${name}.elf)
  get_filename_component(src ${source} ABSOLUTE)
  get_filename_component(src_dir ${src} DIRECTORY)
  file(GLOB headers ${src_dir}/*.h)
  if(bits EQUAL 32)
    set(arch -m32 -march=i686)
  else()
    set(arch -m64 -mno-red-zone -mcmodel=small)
  endif()
  add_custom_command(
    OUTPUT ${elf}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${CMAKE_C_COMPILER} ${arch} -nostdlib -ffreestanding -fno-pic
            ${HVCORE_GUEST_NO_PIE} -static -fno-stack-protector
            -fno-asynchronous-unwind-tables -O2 -Wall -Werror
            -Wl,--build-id=none -Wl,-T,${HVCORE_ELF_GUEST_LD}
            -Wl,--defsym=hvcore_guest_load=${address} -Wl,-z,noexecstack
            -Wl,--no-warn-rwx-segments -o ${elf} ${src}
    DEPENDS ${src} ${headers} ${HVCORE_ELF_GUEST_LD}
    COMMENT "Building ELF guest ${name}"
    VERBATIM)
  add_custom_target(guest-${name} DEPENDS ${elf})
endfunction()
