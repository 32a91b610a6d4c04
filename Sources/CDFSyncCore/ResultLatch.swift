import Foundation

/// One result handed from the thread or task that computes it to a thread that blocks until it is there: a process's
/// main thread waiting for its server task, a caller waiting for the reading thread it started. The first result set
/// is the one waited for; later ones are ignored.
public final class ResultLatch<Value>: @unchecked Sendable {
    // @unchecked: `result` is written once and read only while `condition` is locked; the value crosses from one
    // thread to the other exactly once, which is what a caller with a non-Sendable `Value` relies on.
    private let condition = NSCondition()
    private var result: Result<Value, any Error>?

    public init() {}

    /// Sets the result (the first call wins) and wakes the waiters.
    public func set(_ result: Result<Value, any Error>) {
        condition.lock()
        if self.result == nil { self.result = result }
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until a result is set; returns its value or throws its error.
    public func wait() throws -> Value {
        condition.lock()
        while result == nil { condition.wait() }
        let result = self.result!
        condition.unlock()
        return try result.get()
    }
}

extension ResultLatch where Value == Void {
    /// Sets a successful result.
    public func succeed() { set(.success(())) }
}
