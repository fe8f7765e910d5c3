/* LD_PRELOAD shim for the benchmark only: Janus never gathers ICE candidates on a loopback
 * interface (src/ice.c skips IFF_LOOPBACK), and the benchmark must keep all traffic on
 * 127.0.0.1. Clearing the flag on the way out of getifaddrs() lets Janus offer 127.0.0.1, which
 * janus.jcfg then enforces as the only candidate address. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>

int getifaddrs(struct ifaddrs **ifap) {
	int (*real)(struct ifaddrs **) = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
	if (real == 0)
		return -1;
	int result = real(ifap);
	if (result == 0) {
		for (struct ifaddrs *ifa = *ifap; ifa != 0; ifa = ifa->ifa_next)
			ifa->ifa_flags &= ~IFF_LOOPBACK;
	}
	return result;
}
