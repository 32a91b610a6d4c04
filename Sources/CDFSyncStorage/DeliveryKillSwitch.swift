#if DEBUG
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Test hook, compiled into debug builds only: `CDFSYNC_TEST_KILL_AT_DELIVERY=before-rename:N` (or
/// `after-rename:N`) makes the process SIGKILL itself just before (just after) the N-th `rename(2)` of delivery it
/// performs — segment files, `manifest.json`, the directory's owner file, counted from 1 across the process.
///
/// The crash tests run the real `cdfsync` with it to stop delivery at exactly each rename, then check that the
/// next run (with nothing new to read) repairs the output directory. A release build ignores the variable (this
/// type does not exist there); in a debug build an unset variable costs one dictionary lookup per process.
struct DeliveryKillSwitch: Sendable {
    static let variable = "CDFSYNC_TEST_KILL_AT_DELIVERY"

    enum When: String, Sendable { case before = "before-rename", after = "after-rename" }
    let when: When
    let rename: Int

    /// The switch the environment asks for (nil when the variable is unset or malformed; malformed says so on stderr).
    static let fromEnvironment: DeliveryKillSwitch? = {
        guard let text = ProcessInfo.processInfo.environment[variable] else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let when = When(rawValue: String(parts[0])), let n = Int(parts[1]), n >= 1 else {
            FileHandle.standardError.write(Data(
                "\(variable)=\(text) ignored: expected before-rename:N or after-rename:N with N ≥ 1\n".utf8))
            return nil
        }
        return DeliveryKillSwitch(when: when, rename: n)
    }()

    /// Renames of delivery started so far in this process.
    private static let renames = Atomic<Int>(0)

    func reached(_ step: PanelStore.DeliveryStep) {
        switch step {
        case .beforeRename(let file):
            let n = Self.renames.add(1, ordering: .relaxed).newValue
            if when == .before && n == rename { die(file) }
        case .afterRename(let file):
            if when == .after && Self.renames.load(ordering: .relaxed) == rename { die(file) }
        default:
            break
        }
    }

    private func die(_ file: String) -> Never {
        FileHandle.standardError.write(Data("\(Self.variable): killed \(when.rawValue) \(rename) (\(file))\n".utf8))
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
#endif
