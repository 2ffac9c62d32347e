/* libarchive's symbols (see libarchive.h). */
#include "libarchive.h"

#define LIBARCHIVE "libarchive.so.13"
DLOPEN_NOTE(dlopen_note_archive,
            "[{\"feature\":\"rootfs\",\"description\":\"sealed root file systems and OCI "
            "images\",\"priority\":\"recommended\",\"soname\":[\"" LIBARCHIVE "\"]}]");

DLSYM(archive_entry_filetype);
DLSYM(archive_entry_free);
DLSYM(archive_entry_new);
DLSYM(archive_entry_pathname);
DLSYM(archive_entry_set_pathname);
DLSYM(archive_entry_size);
DLSYM(archive_entry_sourcepath);
DLSYM(archive_error_string);
DLSYM(archive_read_data);
DLSYM(archive_read_disk_descend);
DLSYM(archive_read_disk_new);
DLSYM(archive_read_disk_open);
DLSYM(archive_read_disk_set_behavior);
DLSYM(archive_read_disk_set_standard_lookup);
DLSYM(archive_read_extract2);
DLSYM(archive_read_free);
DLSYM(archive_read_new);
DLSYM(archive_read_next_header);
DLSYM(archive_read_next_header2);
DLSYM(archive_read_open_fd);
DLSYM(archive_read_support_filter_gzip);
DLSYM(archive_read_support_filter_zstd);
DLSYM(archive_read_support_format_tar);
DLSYM(archive_write_close);
DLSYM(archive_write_data);
DLSYM(archive_write_disk_new);
DLSYM(archive_write_disk_set_options);
DLSYM(archive_write_free);
DLSYM(archive_write_header);
DLSYM(archive_write_new);
DLSYM(archive_write_open_fd);
DLSYM(archive_write_set_format_pax_restricted);
static const struct dlopen_sym syms[] = {
    DLSYM_ENTRY(archive_entry_filetype),
    DLSYM_ENTRY(archive_entry_free),
    DLSYM_ENTRY(archive_entry_new),
    DLSYM_ENTRY(archive_entry_pathname),
    DLSYM_ENTRY(archive_entry_set_pathname),
    DLSYM_ENTRY(archive_entry_size),
    DLSYM_ENTRY(archive_entry_sourcepath),
    DLSYM_ENTRY(archive_error_string),
    DLSYM_ENTRY(archive_read_data),
    DLSYM_ENTRY(archive_read_disk_descend),
    DLSYM_ENTRY(archive_read_disk_new),
    DLSYM_ENTRY(archive_read_disk_open),
    DLSYM_ENTRY(archive_read_disk_set_behavior),
    DLSYM_ENTRY(archive_read_disk_set_standard_lookup),
    DLSYM_ENTRY(archive_read_extract2),
    DLSYM_ENTRY(archive_read_free),
    DLSYM_ENTRY(archive_read_new),
    DLSYM_ENTRY(archive_read_next_header),
    DLSYM_ENTRY(archive_read_next_header2),
    DLSYM_ENTRY(archive_read_open_fd),
    DLSYM_ENTRY(archive_read_support_filter_gzip),
    DLSYM_ENTRY(archive_read_support_filter_zstd),
    DLSYM_ENTRY(archive_read_support_format_tar),
    DLSYM_ENTRY(archive_write_close),
    DLSYM_ENTRY(archive_write_data),
    DLSYM_ENTRY(archive_write_disk_new),
    DLSYM_ENTRY(archive_write_disk_set_options),
    DLSYM_ENTRY(archive_write_free),
    DLSYM_ENTRY(archive_write_header),
    DLSYM_ENTRY(archive_write_new),
    DLSYM_ENTRY(archive_write_open_fd),
    DLSYM_ENTRY(archive_write_set_format_pax_restricted),
};
static struct dlopen_lib lib = {LIBARCHIVE,
                                "a root file system (a sealed tree or an OCI image)",
                                "libarchive13",
                                syms,
                                sizeof syms / sizeof *syms,
                                NULL,
                                NULL};

int libarchive_load(tether_error_t *err)
{
    return dlopen_lib_load(&lib, err);
}
