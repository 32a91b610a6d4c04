import Foundation
import Synchronization

/// SIGINT / SIGTERM → a flag the running statement polls, so it is cancelled on the warehouse and nothing past
/// the last checkpoint is applied. A second signal ends the process at once (LMDB aborts the open transaction).
enum Interrupts {
    static let flag = Atomic<Int>(0)

    static var requested: Bool { flag.load(ordering: .relaxed) > 0 }

    static func install() {
        // A parent may have started this process with the signals blocked (the mask is inherited: Foundation's
        // Process spawning from a dispatch thread does so); SIGTERM would then stay pending and never stop it.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if Interrupts.flag.add(1, ordering: .relaxed).newValue > 1 {
                    signal(s, SIG_DFL)
                    raise(s)
                }
            }
        }
    }
}
