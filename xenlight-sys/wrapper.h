/* The libxl API version is pinned so that a newer libxl keeps the calling
 * conventions these bindings were written against (0x041400 is the newest
 * value libxl 4.17 accepts; all async ops take an ao_how argument). */
#define LIBXL_API_VERSION 0x041400
#include <libxl.h>
#include <libxl_utils.h>
#include <libxlutil.h>
#include <xentoollog.h>
