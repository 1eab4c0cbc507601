/* Growable arrays: the one way an array of the daemon gets room for more elements. */
#ifndef SY_CORE_GROW_H
#define SY_CORE_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* Room for `need` elements of `elem` bytes in *arr (capacity *cap elements), doubling from `first`: 0, or -1
 * out of memory or a size that does not fit (the array unchanged). */
static inline int sy_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return -1;
        n *= 2;
    }
    if (elem != 0 && n > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

#endif
