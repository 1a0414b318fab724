#ifndef MEMGUARD_EXPORT_H
#define MEMGUARD_EXPORT_H

/* Only symbols marked MG_API are exported from the shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define MG_API __attribute__((visibility("default")))
#define MG_NODISCARD __attribute__((warn_unused_result))
#else
#define MG_API
#define MG_NODISCARD
#endif

#endif
