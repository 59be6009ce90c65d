/* A byte buffer for building ACPI tables and a tiny AML encoder: just the
 * terms hvc_acpi_build() needs for its DSDT (Scope, Device, Name, integers,
 * strings, ResourceTemplate buffers and the resource descriptors for ports,
 * MMIO and interrupts). Encodings follow the ACPI 6.x specification,
 * chapter 20 (AML) and section 6.4 (resource data types).
 *
 * Nothing here fails loudly: an allocation failure or an impossible length
 * sets hvi_bytes.failed and turns later appends into no-ops, so a caller
 * builds a whole table and checks once at the end. */
#ifndef HVCORE_DEVICES_ACPI_AML_H
#define HVCORE_DEVICES_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hvi_bytes {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;
};

/* Stores the low @p n bytes of @p v at @p p, least significant first: ACPI
 * is little-endian whatever the host is. */
static inline void hvi_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void hvi_bytes_free(struct hvi_bytes *b);
void hvi_bytes_put(struct hvi_bytes *b, const void *p, size_t n);
/* Appends @p n bytes of little-endian @p v. */
void hvi_bytes_le(struct hvi_bytes *b, uint64_t v, unsigned n);
/* Appends @p n zero bytes and returns their offset. */
size_t hvi_bytes_zero(struct hvi_bytes *b, size_t n);
/* Pads with zeros to a multiple of @p align (a power of two). */
void hvi_bytes_align(struct hvi_bytes *b, size_t align);

/* Packages. hvi_aml_scope() and hvi_aml_device() open one and return a mark
 * for hvi_aml_end(), which prefixes the content with its PkgLength (whose
 * size depends on the content, hence the insertion afterwards). @p path is
 * one 4-character NameSeg, optionally preceded by '\' for the root. */
size_t hvi_aml_scope(struct hvi_bytes *b, const char *path);
size_t hvi_aml_device(struct hvi_bytes *b, const char *path);
void hvi_aml_end(struct hvi_bytes *b, size_t mark);

/* Name (seg, ...): follow with exactly one data object. */
void hvi_aml_name(struct hvi_bytes *b, const char *seg);
/* An Integer in its shortest encoding (ZeroOp, OneOp, Byte/Word/DWord/
 * QWordPrefix), as iasl would write it. */
void hvi_aml_integer(struct hvi_bytes *b, uint64_t v);
/* A String of 7-bit ASCII (the caller has checked the characters). */
void hvi_aml_string(struct hvi_bytes *b, const char *s);

/* Converts a 7-character EISA id such as "PNP0501" (three capitals, four
 * upper-case hex digits) to the 32-bit form of ASL's EisaId(); false when
 * @p id has another shape. */
bool hvi_aml_eisaid(const char *id, uint32_t *out);

/* ResourceTemplate () { ... }: a Buffer of resource descriptors ended by an
 * End Tag. hvi_aml_resources_end() appends the End Tag and inserts the
 * buffer's PkgLength and size. */
size_t hvi_aml_resources(struct hvi_bytes *b);
void hvi_aml_resources_end(struct hvi_bytes *b, size_t mark);

/* Resource descriptors, between hvi_aml_resources() and _end(). All
 * describe fixed ranges the device consumes. */
/* IO (Decode16, base, base, 1, length): ports with length <= 255. */
void hvi_aml_res_io(struct hvi_bytes *b, uint16_t base, uint8_t length);
/* WordIO (ResourceConsumer, ...): a port range too long for IO (). */
void hvi_aml_res_word_io(struct hvi_bytes *b, uint16_t base, uint16_t length);
/* Memory32Fixed (ReadWrite, base, length). */
void hvi_aml_res_mem32(struct hvi_bytes *b, uint32_t base, uint32_t length);
/* QWordMemory (ResourceConsumer, ..., NonCacheable, ReadWrite, ...): MMIO
 * that does not fit in 32 bits. */
void hvi_aml_res_mem64(struct hvi_bytes *b, uint64_t base, uint64_t length);
/* Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi}. */
void hvi_aml_res_irq(struct hvi_bytes *b, uint32_t gsi, bool level,
                     bool active_low);

#endif
