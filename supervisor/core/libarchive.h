/* libarchive, loaded with dlopen when a tree is packed or unpacked (sealed root file systems,
 * OCI images): a plain `tether run` maps neither it nor its dependencies (core/dlopen.h).
 * Call libarchive_load before the first sym_archive_*; the symbols stay for the process and
 * its forked children. */
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include "dlopen.h"

int libarchive_load(tether_error_t *err);

extern DLSYM(archive_entry_filetype);
extern DLSYM(archive_entry_free);
extern DLSYM(archive_entry_new);
extern DLSYM(archive_entry_pathname);
extern DLSYM(archive_entry_set_pathname);
extern DLSYM(archive_entry_size);
extern DLSYM(archive_entry_sourcepath);
extern DLSYM(archive_error_string);
extern DLSYM(archive_read_data);
extern DLSYM(archive_read_disk_descend);
extern DLSYM(archive_read_disk_new);
extern DLSYM(archive_read_disk_open);
extern DLSYM(archive_read_disk_set_behavior);
extern DLSYM(archive_read_disk_set_standard_lookup);
extern DLSYM(archive_read_extract2);
extern DLSYM(archive_read_free);
extern DLSYM(archive_read_new);
extern DLSYM(archive_read_next_header);
extern DLSYM(archive_read_next_header2);
extern DLSYM(archive_read_open_fd);
extern DLSYM(archive_read_support_filter_gzip);
extern DLSYM(archive_read_support_filter_zstd);
extern DLSYM(archive_read_support_format_tar);
extern DLSYM(archive_write_close);
extern DLSYM(archive_write_data);
extern DLSYM(archive_write_disk_new);
extern DLSYM(archive_write_disk_set_options);
extern DLSYM(archive_write_free);
extern DLSYM(archive_write_header);
extern DLSYM(archive_write_new);
extern DLSYM(archive_write_open_fd);
extern DLSYM(archive_write_set_format_pax_restricted);
