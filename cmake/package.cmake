# The Debian package: `cmake --build BUILD --target package` makes tether_VERSION_ARCH.deb.
# Nothing in it gates a container or starts a service: the hooks.d files and the systemd
# units are shipped as files to copy (doc/operations.md), never where a runtime or systemd
# reads them.

set(TETHER_MAINTAINER "tether maintainers <maintainers@tether.invalid>"
    CACHE STRING "The Maintainer field of the Debian package")

# The hooks.d files name the installed binary (CMAKE_INSTALL_PREFIX as it is when installing:
# /usr for the package), not /usr/local/bin as contrib/hooks.d does.
install(CODE "
  foreach(f tether.json tether-poststop.json)
    file(READ \"${PROJECT_SOURCE_DIR}/contrib/hooks.d/\${f}\" text)
    string(REPLACE /usr/local/bin/tether \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/tether\"
           text \"\${text}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/package/hooks.d/\${f}\" \"\${text}\")
  endforeach()")
configure_file(${PROJECT_SOURCE_DIR}/cmake/debian/changelog
               ${PROJECT_BINARY_DIR}/package/changelog @ONLY)

# Debian wants the man page and the changelog compressed, without a time stamp (-n).
find_program(GZIP gzip REQUIRED)
add_custom_command(
  OUTPUT ${PROJECT_BINARY_DIR}/package/tether.1.gz ${PROJECT_BINARY_DIR}/package/changelog.gz
  COMMAND ${GZIP} -9nc ${PROJECT_SOURCE_DIR}/doc/tether.1 > ${PROJECT_BINARY_DIR}/package/tether.1.gz
  COMMAND ${GZIP} -9nc ${PROJECT_BINARY_DIR}/package/changelog > ${PROJECT_BINARY_DIR}/package/changelog.gz
  DEPENDS doc/tether.1 ${PROJECT_BINARY_DIR}/package/changelog
  COMMENT "Compressing the man page and the changelog")
add_custom_target(package_files ALL DEPENDS ${PROJECT_BINARY_DIR}/package/tether.1.gz
                                            ${PROJECT_BINARY_DIR}/package/changelog.gz)

set(docdir ${CMAKE_INSTALL_DATADIR}/doc/tether)
install(TARGETS tether RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_BINARY_DIR}/package/tether.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES policies/README.md DESTINATION ${docdir}/policies)
install(FILES policies/default.lua policies/allow-all.lua policies/geofence.lua
        policies/default.rego policies/allow-all.rego policies/geofence.rego
        policies/image-eu.lua policies/image-eu.rego
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tether/policies)
install(FILES ${PROJECT_BINARY_DIR}/package/hooks.d/tether.json
        ${PROJECT_BINARY_DIR}/package/hooks.d/tether-poststop.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tether/hooks.d)
install(FILES cmake/debian/copyright ${PROJECT_BINARY_DIR}/package/changelog.gz
        README.md doc/operations.md doc/supervision.md doc/threat-model.md doc/seccomp.md
        doc/sealed-format.md doc/container-identity.md DESTINATION ${docdir})
install(DIRECTORY contrib/hooks.d contrib/opa contrib/systemd contrib/kubernetes
        DESTINATION ${docdir}/examples
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                              WORLD_READ WORLD_EXECUTE)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tether)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${TETHER_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${TETHER_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "policy-bound workload supervisor")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "tether measures a command and the host it is about to run on, asks a policy
(embedded Lua or an OPA server) whether it may run, starts it only on an allow,
stays its parent and watches it, and writes a hash-chained audit trail.  It
also gates containers as an OCI runtime hook.
.
The package installs the program, its manual page, example policies, and
hooks.d files and systemd units to copy into place; it enables none of them.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Loaded with dlopen only when their feature is used, so dpkg-shlibdeps cannot see them
# (the binary's .note.dlopen names them): libsystemd for transient scopes
# (doc/supervision.md), libcurl for OPA, libarchive for root file systems and OCI images.
# libcrypto (in libssl3) is loaded the same way, at its first use, but keys, sealed files and
# images all need it: a dependency, not a recommendation.  So is libseccomp, which every
# `tether run` loads to confine its workload.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libssl3 (>= 3.0), libseccomp2 (>= 2.5)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcurl4, libarchive13, libsystemd0")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "runc | crun, podman")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
