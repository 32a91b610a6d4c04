import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the transport misdelivers one response (fault kinds `drop`, `reset_mid_body` and `slow`).
///
/// The fault middleware decides; it asks for the fault with a private response header that
/// ``TransportFaultHandler`` removes before anything reaches the wire.
enum TransportFault: Equatable, Sendable {
    /// Close the connection without answering.
    case drop
    /// Send the head and half the body, then reset the connection (TCP RST).
    case resetMidBody
    /// Hold the whole response back this many milliseconds.
    case slow(milliseconds: Int)

    /// The private response header that carries the fault from the middleware to the handler.
    static let header = "x-sim-transport-fault"

    var headerValue: String {
        switch self {
        case .drop: "drop"
        case .resetMidBody: "reset_mid_body"
        case .slow(let ms): "slow=\(ms)"
        }
    }

    init?(headerValue: String) {
        switch headerValue {
        case "drop": self = .drop
        case "reset_mid_body": self = .resetMidBody
        default:
            guard headerValue.hasPrefix("slow="), let ms = Int(headerValue.dropFirst(5)) else { return nil }
            self = .slow(milliseconds: max(0, ms))
        }
    }
}

/// The simulator's NIO channel handler, between the HTTP/1.1 codec and Hummingbird: carries out transport faults, and
/// answers `Expect: 100-continue` (libcurl asks before sending a large body) with `100 Continue`.
///
/// Runs on the connection's event loop; it never blocks (a `slow` response is held by a scheduled task).
final class TransportFaultHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Responses go out as written.
        case passing
        /// The connection is closed or being closed; nothing more is sent.
        case closed
        /// Send this many more body bytes, then reset the connection.
        case resetting(remaining: Int)
        /// A `slow` response: everything written is held until the scheduled release.
        case holding([(part: HTTPServerResponsePart, promise: EventLoopPromise<Void>?)])
    }

    private var state = State.passing

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.version == .http1_1,
            head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" })
        {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        switch state {
        case .passing:
            guard case .head(var head) = part, let value = head.headers.first(name: TransportFault.header) else {
                context.write(data, promise: promise)
                return
            }
            head.headers.remove(name: TransportFault.header)
            switch TransportFault(headerValue: value) {
            case .drop:
                state = .closed
                promise?.fail(ChannelError.ioOnClosedChannel)
                context.close(promise: nil)
            case .resetMidBody:
                let half = (head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0) / 2
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                if half == 0 {
                    reset(context)
                } else {
                    state = .resetting(remaining: half)
                }
            case .slow(let ms):
                state = .holding([(.head(head), promise)])
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(ms))) {
                    self.release(context)
                }
            case nil:
                context.write(wrapOutboundOut(.head(head)), promise: promise)
            }
        case .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .resetting(let remaining):
            guard case .body(.byteBuffer(var buffer)) = part else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                return
            }
            let n = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: n)!
            if remaining - n > 0 {
                state = .resetting(remaining: remaining - n)
                context.write(wrapOutboundOut(.body(.byteBuffer(slice))), promise: promise)
                return
            }
            // Half the body is written: once the kernel has it, reset.
            state = .closed
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(slice))), promise: written)
            written.futureResult.hop(to: context.eventLoop).assumeIsolated().whenComplete { _ in
                self.reset(context)
            }
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .holding(var held):
            held.append((part, promise))
            state = .holding(held)
        }
    }

    func flush(context: ChannelHandlerContext) {
        if case .holding = state { return }
        context.flush()
    }

    /// Sends what a `slow` fault held back.
    private func release(_ context: ChannelHandlerContext) {
        guard case .holding(let held) = state else { return }
        state = .passing
        for (part, promise) in held { write(context: context, data: wrapOutboundOut(part), promise: promise) }
        context.flush()
    }

    /// Closes the connection with a TCP reset (SO_LINGER 0), not a FIN.
    private func reset(_ context: ChannelHandlerContext) {
        state = .closed
        if let provider = context.channel as? any SocketOptionProvider {
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).hop(to: context.eventLoop).assumeIsolated()
                .whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }
}
