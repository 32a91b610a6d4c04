import Foundation
import Synchronization

/// The simulator's notion of time: real time by default, or a manual clock that only moves when told.
///
/// Statement states, warehouse start-up, result expiry, link expiry and OAuth token expiry all read
/// this clock. `advance(seconds:)` works in both modes (in real mode it adds an offset).
///
/// - Important: With a manual clock a `wait_timeout` never blocks: the simulator treats the wait as
///   elapsed without time passing, so a test steps time forward explicitly with `advance(seconds:)`.
public final class SimulatorClock: Sendable {
    private struct State {
        var manual: Bool
        var base: Double
        var offset: Double
    }

    private let state: Mutex<State>

    /// A clock that follows real time.
    public init() {
        state = Mutex(State(manual: false, base: 0, offset: 0))
    }

    private init(manualStart: Double) {
        state = Mutex(State(manual: true, base: manualStart, offset: 0))
    }

    /// A clock frozen at `start` (seconds since 1970) until advanced.
    public static func manual(start: Double = 1_767_000_000) -> SimulatorClock {
        SimulatorClock(manualStart: start)
    }

    public var isManual: Bool { state.withLock { $0.manual } }

    /// Seconds since 1970.
    public var now: Double {
        state.withLock { s in (s.manual ? s.base : Date().timeIntervalSince1970) + s.offset }
    }

    public var nowMillis: Int64 { Int64((now * 1000).rounded(.down)) }

    /// Moves the clock forward.
    public func advance(seconds: Double) {
        precondition(seconds >= 0, "the simulator clock only moves forward")
        state.withLock { $0.offset += seconds }
    }
}
