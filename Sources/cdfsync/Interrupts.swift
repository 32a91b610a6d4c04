import Foundation
import Synchronization

/// SIGINT / SIGTERM → a flag the running statement polls, so it is cancelled on the warehouse and nothing past
/// the last checkpoint is applied. A second signal ends the process at once (LMDB aborts the open transaction).
enum Interrupts {
    static let flag = Atomic<Int>(0)
    /// The first signal received (0: none).
    static let firstSignal = Atomic<Int32>(0)

    static var requested: Bool { flag.load(ordering: .relaxed) > 0 }

    /// The status a command stopped by the signal exits with: 128 + its number (130 for SIGINT, 143 for SIGTERM),
    /// as a shell reports a process the signal killed; nil when no signal came.
    static var exitStatus: Int32? {
        let s = firstSignal.load(ordering: .relaxed)
        return s == 0 ? nil : ExitStatus.interrupted(by: s)
    }

    /// The signal's name, for messages ("SIGINT").
    static var signalName: String? {
        switch firstSignal.load(ordering: .relaxed) {
        case 0: nil
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case let s: "signal \(s)"
        }
    }

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
                // Atomics only: this runs in a signal handler.
                _ = Interrupts.firstSignal.compareExchange(expected: 0, desired: s, ordering: .relaxed)
                if Interrupts.flag.add(1, ordering: .relaxed).newValue > 1 {
                    signal(s, SIG_DFL)
                    raise(s)
                }
            }
        }
    }
}
