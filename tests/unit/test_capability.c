/* tether's capability names (core/capability.c) are libcap's, bit for bit: the input
 * document names a process's capabilities with them, and a decision grants by them. */
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>

#include "../../policy/confine.h"
#include "../../supervisor/core/capability.h"
#include "test.h"

int main(void)
{
    int named = 0, differ = 0;
    for (int cap = 0; cap < 64; cap++) {
        char *theirs = cap_to_name(cap); /* "cap_chown", or a number for one it cannot name */
        const char *ours = capability_name(cap);
        bool they_name = theirs != NULL && strncmp(theirs, "cap_", 4) == 0;
        bool same = they_name ? ours != NULL && strcmp(ours, theirs + 4) == 0 : ours == NULL;
        if (!same) {
            differ++;
            printf("# capability %d: libcap `%s`, tether `%s`\n", cap, theirs ? theirs : "(null)",
                   ours ? ours : "(null)");
        }
        if (ours != NULL) {
            named++;
            char spelled[64];
            snprintf(spelled, sizeof spelled, "CAP_%s", ours);
            if (capability_from_name(ours) != cap || confine_cap_from_name(ours) != cap ||
                confine_cap_from_name(spelled) != cap) {
                differ++;
                printf("# capability %d: `%s` does not name it back\n", cap, ours);
            }
        }
        cap_free(theirs);
    }
    CHECK(differ == 0, "the names of all 64 bits are libcap's (%d named)", named);
    CHECK(named == CAP_LAST_CAP + 1, "every capability of the kernel's headers has its name");
    CHECK(capability_from_name("cap_chown") < 0 && capability_from_name("CHOWN") < 0 &&
              capability_from_name("") < 0 && capability_from_name("0") < 0,
          "a name is lower case and without its prefix");
    return test_done();
}
