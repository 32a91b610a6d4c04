import Foundation

/// Exponential backoff with full jitter, `Retry-After` honoured (capped), one overall budget.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int = 8
    /// Total seconds a single request may spend retrying.
    public var budget: Double = 300
    public var baseDelay: Double = 0.25
    public var maxDelay: Double = 20
    public var retryAfterCap: Double = 60

    public init() {}

    /// Seconds to wait before attempt `attempt` (1 = the first retry).
    public func delay(attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(max(retryAfter, 0), retryAfterCap) }
        let exp = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: exp / 2...exp)
    }
}

/// What may be retried, by request kind (spec §4.4).
enum RetryRule {
    /// `POST /statements`: only when the request cannot have run (429, 503, connection refused).
    case submit
    /// Reads and cancels: 429, 5xx and network errors.
    case idempotent

    func shouldRetry(status: Int) -> Bool {
        switch self {
        case .submit: status == 429 || status == 503
        case .idempotent: status == 429 || status >= 500
        }
    }

    func shouldRetry(_ error: TransportError) -> Bool {
        switch self {
        case .submit: error.requestNeverSent
        case .idempotent: error.kind != .tls && error.kind != .couldNotResolveHost
        }
    }
}
