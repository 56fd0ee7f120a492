using System.Buffers;
using System.IO.Pipelines;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

internal sealed partial class MqttConnection
{
    /// <summary>Messages encoded per flush: bounds latency while keeping syscalls few.</summary>
    private const int BatchSize = 256;

    /// <summary>
    /// Flushes the output; a flush that has to wait (a full socket buffer) is cancelled when the
    /// connection closes. The token is asked for only then, so most connections never make one.
    /// </summary>
    private ValueTask<FlushResult> FlushOutputAsync()
    {
        var flush = _output.FlushAsync();
        return flush.IsCompleted ? flush : WaitForFlushAsync(flush);
    }

    private async ValueTask<FlushResult> WaitForFlushAsync(ValueTask<FlushResult> flush)
    {
        using var cancel = Closed.UnsafeRegister(static output => ((PipeWriter)output!).CancelPendingFlush(), _output);
        return await flush;
    }

    private async Task WriteLoopAsync(bool inline)
    {
        if (_disposed)
        {
            return; // queued before the connection ended, run after: there is nothing to write to
        }

        Interlocked.Increment(ref _writerActive);

        // Rented per writer run: an idle connection keeps no batch array.
        var batch = ArrayPool<(ushort PacketId, Outgoing Item, bool Dup)>.Shared.Rent(BatchSize);
        try
        {
            while (true)
            {
                Volatile.Write(ref _writeRequested, 0);
                var wrote = false;
                bool closeNow;
                lock (Gate)
                {
                    if (_control is { WrittenCount: > 0 })
                    {
                        _output.Write(_control.WrittenSpan);
                        _control.ResetWrittenCount();
                        wrote = true;
                    }

                    closeNow = _closeAfterFlush;
                }

                var more = false;
                if (!closeNow && _deliveriesOpen && Session is { } session)
                {
                    var now = _broker.NowMs;
                    List<long>? expired = null;
                    var taken = session.TakeBatch(batch.AsSpan(0, BatchSize), InflightWindow, now, ref expired);
                    expired?.ForEach(_broker.ForgetJournaled);
                    for (var i = 0; i < taken; i++)
                    {
                        var (packetId, item, dup) = batch[i];
                        WriteMessage(packetId, item, dup, now);
                        batch[i] = default; // do not keep messages alive in the pooled array
                    }

                    wrote |= taken > 0;
                    more = taken == BatchSize;
                    if (taken > 0)
                    {
                        _broker.Metrics.Sent(taken);
                        Activity?.MessagesDelivered(taken);
                        MqttBroker.OnQueueDrained(session);
                    }
                }

                if (wrote)
                {
                    var flush = await FlushOutputAsync();
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        return;
                    }
                }

                if (closeNow)
                {
                    CloseFlushed.TrySetResult();
                    EndAfterFlush();
                    return;
                }

                if (more || Volatile.Read(ref _writeRequested) == 1)
                {
                    if (inline)
                    {
                        // Started on a publisher's thread: one batch there, the rest on the pool.
                        inline = false;
                        await Task.Yield();
                    }

                    continue;
                }

                // Nothing left: stand down, unless a Wake slipped in between the check and here. An idle
                // connection keeps no control buffer (the next acknowledgement makes a new one).
                lock (Gate)
                {
                    if (_control is { WrittenCount: 0 })
                    {
                        _control = null;
                    }
                }

                Volatile.Write(ref _writerRunning, 0);
                if (Volatile.Read(ref _writeRequested) == 0 || Interlocked.CompareExchange(ref _writerRunning, 1, 0) != 0)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            CloseFlushed.TrySetResult();
        }
        catch (Exception e)
        {
            CloseFlushed.TrySetResult();
            _broker.Logger.ConnectionFault(ClientId, RemoteAddress, "write: " + e.GetType().Name + ": " + e.Message);
            Abort();
        }
        finally
        {
            ArrayPool<(ushort PacketId, Outgoing Item, bool Dup)>.Shared.Return(batch);
            Interlocked.Decrement(ref _writerActive);
        }
    }

    private void WriteMessage(ushort packetId, Outgoing item, bool dup, long now)
    {
        var message = item.Message;
        var v5 = IsV5;
        var session = Session!;
        if (!session.CanReceive(message.Topic, _broker.Authenticator.PolicyGeneration))
        {
            // iot:Receive is checked on delivery too: a policy detached after queueing still applies.
            if (item.Qos > 0)
            {
                _broker.ForgetJournaled(session.Forget(packetId));
            }

            return;
        }

        if (ClientMaxPacketSize != 0 && message.Payload.Length + message.Topic.Length + 16 > ClientMaxPacketSize)
        {
            // MQTT 5 §3.1.2.11.4: a packet larger than the client's maximum is discarded for it.
            if (item.Qos > 0)
            {
                _broker.ForgetJournaled(session.Forget(packetId));
            }

            return;
        }

        if (item.Qos == 0 && item.SubscriptionIds is null && !item.Retain && message.Properties?.MessageExpiryInterval is null)
        {
            message.WriteQos0(_output, v5);
            return;
        }

        MqttEncoder.WritePublish(_output, message, item.Qos, packetId, v5, item.Retain, item.SubscriptionIds, dup, now);
    }
}
