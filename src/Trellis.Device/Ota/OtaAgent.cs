using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Trellis.Device.Ota;

/// <summary>
/// Over-the-air firmware updates on the device: takes the next job whose document is an OTA
/// document (AWS's <c>afr_ota</c> form, made by <c>trellis jobs create --firmware</c>), downloads
/// the image (a delta image when one exists for the image running now, else the full image,
/// resumed with HTTP ranges after a cut), verifies its SHA-256 and ECDSA P-256 signature, hands it
/// to the application to install, and reports progress in <c>statusDetails</c>. SUCCEEDED is
/// reported only after the restart, once the new version runs and passes its self-test; a failed
/// self-test rolls back and reports FAILED. State that must outlive a restart is kept in
/// <see cref="OtaOptions.StateDirectory"/>.
/// </summary>
/// <example>
/// <code>
/// var agent = new OtaAgent(device, new OtaOptions
/// {
///     StateDirectory = "ota", SignerCertificate = signer, CurrentVersion = "2.0.0", CurrentImagePath = "slot-a.bin",
///     InstallAsync = async (update, ct) => { File.Copy(update.ImagePath, "slot-b.bin", true); Restart(); },
///     SelfTestAsync = ct => Task.FromResult(SensorsRespond()),
/// });
/// await agent.StartAsync();
/// </code>
/// </example>
public sealed class OtaAgent : IDisposable
{
    private const string StateFile = "ota-state.json";
    private readonly TrellisDevice _device;
    private readonly OtaOptions _options;
    private readonly JobsClient _jobs;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _busy = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();

    public OtaAgent(TrellisDevice device, OtaOptions options)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(options);
        _device = device;
        _options = options;
        _jobs = device.Jobs();
        Directory.CreateDirectory(options.StateDirectory);
        var ca = options.DownloadCaCertificate ?? device.Options.CaCertificate;
        _http = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, errors) => certificate is not null && TrellisDevice.ValidateServer(certificate, errors, ca) },
        })
        { Timeout = TimeSpan.FromMinutes(10) };
    }

    /// <summary>What the agent is doing, one line at a time (for the application's log).</summary>
    public event Action<string>? Log;

    /// <summary>Raised when the agent has reported a job's final status: job id, status, reason (null on success).</summary>
    public event Action<string, string, string?>? Finished;

    /// <summary>
    /// Subscribes to the job notifications, settles an update installed before a restart
    /// (SUCCEEDED, or FAILED and rolled back), then takes the next pending job.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _jobs.NextChanged += next => next is null ? Task.CompletedTask : RunAsync(_stopping.Token);
        await _jobs.StartAsync(cancellationToken);
        await _busy.WaitAsync(cancellationToken);
        try
        {
            await SettleInstalledAsync(cancellationToken);
        }
        finally
        {
            _busy.Release();
        }

        await RunAsync(cancellationToken);
    }

    /// <summary>
    /// Only settles an update installed before a restart (SUCCEEDED, or FAILED and rolled back),
    /// for an application that hands the agent its OTA jobs itself (<see cref="RunAsync"/>) instead of
    /// letting <see cref="StartAsync"/> take every job. The jobs client must be started.
    /// </summary>
    public async Task SettleAsync(CancellationToken cancellationToken = default)
    {
        await _busy.WaitAsync(cancellationToken);
        try
        {
            await SettleInstalledAsync(cancellationToken);
        }
        finally
        {
            _busy.Release();
        }
    }

    /// <summary>True when <paramref name="execution"/>'s document is one the agent runs (an <c>afr_ota</c> document).</summary>
    public static bool IsOtaJob(JobExecution? execution) => execution?.Document?["afr_ota"] is JsonObject;

    /// <summary>Takes pending jobs one after another until none is left (or one awaits a restart).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (!await _busy.WaitAsync(0, cancellationToken))
        {
            return; // the running loop will ask for the next job itself
        }

        try
        {
            while (!cancellationToken.IsCancellationRequested && ReadState() is null)
            {
                var execution = await _jobs.StartNextAsync(new JsonObject { ["step"] = "starting" }, cancellationToken: cancellationToken);
                if (execution is null)
                {
                    return;
                }

                try
                {
                    await HandleAsync(execution, cancellationToken);
                }
                catch (JobRejectedException e)
                {
                    // Canceled or timed out by the service meanwhile: drop it and take the next.
                    Log?.Invoke($"{execution.JobId}: ended by the service ({e.Reason}); its download is dropped");
                    ClearState(execution.JobId);
                    DeleteLeftovers(execution.JobId);
                }
            }
        }
        catch (Exception e) when (e is TimeoutException or MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException or OperationCanceledException)
        {
            Log?.Invoke($"jobs: {e.Message}; retried on the next notification or start");
        }
        finally
        {
            _busy.Release();
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
        _http.Dispose();
        _busy.Dispose();
    }

    private async Task HandleAsync(JobExecution execution, CancellationToken cancellationToken)
    {
        var jobId = execution.JobId;
        var ota = execution.Document?["afr_ota"];
        var url = ota?["files"]?[0]?["update_data_url"]?.GetValue<string>();
        var streamName = ota?["streamname"]?.GetValue<string>();
        if (ota?["files"] is not JsonArray { Count: > 0 } files || files[0] is not JsonObject file || (url is null && streamName is null))
        {
            await FinishAsync(jobId, "REJECTED", "not an OTA job: the OTA agent runs documents with afr_ota.files[0].update_data_url or afr_ota.streamname", cancellationToken);
            return;
        }

        var version = file["version"]?.GetValue<string>();
        var sha256 = file["sha256"]?.GetValue<string>()?.ToLowerInvariant();
        var signature = file["sig-sha256-ecdsa"]?.GetValue<string>();
        var size = file["filesize"]?.GetValue<long>();
        if (signature is null)
        {
            await FinishAsync(jobId, "FAILED", "the job document carries no sig-sha256-ecdsa: unsigned images are not installed", cancellationToken);
            return;
        }

        Log?.Invoke($"{jobId}: update to {version ?? "(no version)"}");
        var image = Path.Combine(_options.StateDirectory, jobId + ".img");
        Func<Task<string?>> download = url is not null
            ? () => DownloadAsync(jobId, url, image, size, cancellationToken)
            : () => StreamAsync(jobId, streamName!, file["fileid"]?.GetValue<int>() ?? 0, image, size, cancellationToken);
        var fromDelta = url is not null && await TryDeltaAsync(jobId, url, image, cancellationToken);
        if (!fromDelta)
        {
            var downloaded = await download();
            if (downloaded is not null)
            {
                await FinishAsync(jobId, "FAILED", downloaded, cancellationToken);
                return;
            }
        }

        var refusal = Verify(image, sha256, signature, out var actual);
        if (refusal is not null && fromDelta)
        {
            Log?.Invoke($"{jobId}: the image rebuilt from the delta failed its check ({refusal}); downloading the full image");
            File.Delete(image);
            fromDelta = false;
            var downloaded = await download();
            refusal = downloaded ?? Verify(image, sha256, signature, out actual);
        }

        if (refusal is not null)
        {
            File.Delete(image);
            await FinishAsync(jobId, "FAILED", refusal, cancellationToken);
            return;
        }

        await ProgressAsync(jobId, Details(("step", "installing"), ("version", version), ("delta", fromDelta ? "true" : "false")), cancellationToken);
        WriteState(new OtaState(jobId, version, _options.CurrentVersion, actual));
        try
        {
            await _options.InstallAsync(new OtaUpdate(jobId, version, image, actual, fromDelta), cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            ClearState(jobId);
            await FinishAsync(jobId, "FAILED", $"install failed: {e.Message}", cancellationToken);
            return;
        }

        await ProgressAsync(jobId, Details(("step", "awaiting-restart"), ("version", version)), cancellationToken);
        Log?.Invoke($"{jobId}: installed; SUCCEEDED is reported once {version ?? "the new image"} runs after the restart");
    }

    /// <summary>After a restart: the update installed before it either runs and passes its self-test, or is rolled back.</summary>
    private async Task SettleInstalledAsync(CancellationToken cancellationToken)
    {
        if (ReadState() is not { } state)
        {
            return;
        }

        string status;
        string? reason = null;
        if (state.Version is not null && state.Version != _options.CurrentVersion)
        {
            status = "FAILED";
            reason = $"after the restart the device runs {_options.CurrentVersion}, not {state.Version}: the new image did not boot";
        }
        else if (_options.SelfTestAsync is null || await _options.SelfTestAsync(cancellationToken))
        {
            status = "SUCCEEDED";
        }
        else
        {
            status = "FAILED";
            reason = $"{state.Version ?? "the new image"} failed its self-test; rolled back to {state.PreviousVersion}";
            if (_options.RollbackAsync is { } rollback)
            {
                await rollback(state.PreviousVersion, cancellationToken);
            }
        }

        ClearState(state.JobId);
        await FinishAsync(state.JobId, status, reason, cancellationToken, Details(("version", status == "SUCCEEDED" ? _options.CurrentVersion : state.PreviousVersion)));
    }

    /// <summary>Asks for the patch from the image running now; true when the target image was rebuilt from it.</summary>
    private async Task<bool> TryDeltaAsync(string jobId, string url, string image, CancellationToken cancellationToken)
    {
        if (_options.CurrentImagePath is not { } current || !File.Exists(current))
        {
            return false;
        }

        try
        {
            var old = await File.ReadAllBytesAsync(current, cancellationToken);
            var from = Convert.ToHexStringLower(SHA256.HashData(old));
            using var response = await _http.GetAsync(url + (url.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "from=" + from, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                Log?.Invoke($"{jobId}: no delta image from {from[..12]}… ({(int)response.StatusCode}); downloading the full image");
                return false;
            }

            var patch = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            var size = Decompressor.GetDecompressedSize(patch);
            var rebuilt = new byte[checked((int)size)];
            using (var decompressor = new Decompressor())
            {
                decompressor.SetParameter(ZSTD_dParameter.ZSTD_d_windowLogMax, 31);
                decompressor.LoadDictionary(old);
                if (!decompressor.TryUnwrap(patch, rebuilt, 0, out var written) || written != rebuilt.Length)
                {
                    return false;
                }
            }

            await File.WriteAllBytesAsync(image, rebuilt, cancellationToken);
            Log?.Invoke($"{jobId}: rebuilt the image from a {patch.Length}-byte delta instead of {rebuilt.Length} bytes");
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or ZstdException or IOException or OverflowException or TaskCanceledException)
        {
            Log?.Invoke($"{jobId}: the delta image did not apply ({e.Message}); downloading the full image");
            return false;
        }
    }

    /// <summary>Downloads the image into <paramref name="image"/>, resuming a partial file with a Range request; the reason when it could not.</summary>
    private async Task<string?> DownloadAsync(string jobId, string url, string image, long? size, CancellationToken cancellationToken)
    {
        var partial = image + ".part";
        var progress = DownloadProgress(jobId, null, cancellationToken);
        for (var attempt = 1; attempt <= _options.MaxDownloadAttempts; attempt++)
        {
            try
            {
                var have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                if (have > 0)
                {
                    request.Headers.Range = new RangeHeaderValue(have, null);
                }

                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && size is { } whole && have >= whole)
                {
                    File.Move(partial, image, overwrite: true);
                    return null;
                }

                if (response.StatusCode == HttpStatusCode.Forbidden)
                {
                    // The pre-signed link expired while the device was retrying: the job's document holds a fresh one.
                    if ((await _jobs.DescribeAsync(jobId, cancellationToken))?.Document?["afr_ota"]?["files"]?[0]?["update_data_url"]?.GetValue<string>() is { } fresh)
                    {
                        url = fresh;
                    }

                    continue;
                }

                if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.PartialContent))
                {
                    return $"the download failed: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}";
                }

                var append = response.StatusCode == HttpStatusCode.PartialContent;
                var total = size ?? (append ? response.Content.Headers.ContentRange?.Length : response.Content.Headers.ContentLength) ?? 0;
                await using (var source = await response.Content.ReadAsStreamAsync(cancellationToken))
                await using (var target = new FileStream(partial, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                {
                    var buffer = new byte[1 << 16];
                    int read;
                    while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                        await progress(target.Length, total);
                    }

                    await target.FlushAsync(cancellationToken);
                }

                File.Move(partial, image, overwrite: true);
                return null;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                Log?.Invoke($"{jobId}: download attempt {attempt} stopped ({e.Message}); resuming");
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
            }
        }

        return $"the download did not complete in {_options.MaxDownloadAttempts} attempts";
    }

    /// <summary>Fetches the image in blocks from an AWS IoT stream over MQTT (for devices without HTTPS), resuming a partial file.</summary>
    private async Task<string?> StreamAsync(string jobId, string streamId, int fileId, string image, long? size, CancellationToken cancellationToken)
    {
        if (size is not { } total)
        {
            return "the job document gives no filesize: a stream download needs it";
        }

        var partial = image + ".part";
        var progress = DownloadProgress(jobId, "MQTT", cancellationToken);
        var failed = await new StreamDownloader(_device, streamId, fileId, total).DownloadAsync(partial, have => progress(have, total), _options.MaxDownloadAttempts, cancellationToken);
        if (failed is null)
        {
            File.Move(partial, image, overwrite: true);
        }

        return failed;
    }

    private string? Verify(string image, string? expectedSha256, string signature, out string actual)
    {
        byte[] hash;
        using (var file = File.OpenRead(image))
        {
            hash = SHA256.HashData(file);
        }

        actual = Convert.ToHexStringLower(hash);
        if (expectedSha256 is not null && actual != expectedSha256)
        {
            return $"the image's SHA-256 is {actual}, not the {expectedSha256} of the job document: it was cut or changed; nothing was installed";
        }

        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(signature);
        }
        catch (FormatException)
        {
            return "sig-sha256-ecdsa is not base64; nothing was installed";
        }

        using var key = _options.SignerCertificate.GetECDsaPublicKey();
        if (key is null)
        {
            return "the signer certificate has no ECDSA key; nothing was installed";
        }

        var format = bytes.Length == 64 ? DSASignatureFormat.IeeeP1363FixedFieldConcatenation : DSASignatureFormat.Rfc3279DerSequence;
        return key.VerifyHash(hash, bytes, format) ? null : "the image's signature does not verify with the signer certificate; nothing was installed";
    }

    /// <summary>Reports a download's progress in statusDetails once per tenth of the file (have, total), not once per buffer.</summary>
    private Func<long, long, Task> DownloadProgress(string jobId, string? protocol, CancellationToken cancellationToken)
    {
        var reported = -1L;
        return (have, total) =>
        {
            if (total <= 0 || have * 10 / total <= reported)
            {
                return Task.CompletedTask;
            }

            reported = have * 10 / total;
            return ProgressAsync(jobId, Details(("step", "downloading"), ("progress", $"{reported * 10}%"), ("protocol", protocol)), cancellationToken);
        };
    }

    private Task ProgressAsync(string jobId, JsonObject details, CancellationToken cancellationToken) =>
        _jobs.UpdateAsync(jobId, "IN_PROGRESS", details, cancellationToken: cancellationToken);

    private async Task FinishAsync(string jobId, string status, string? reason, CancellationToken cancellationToken, JsonObject? details = null)
    {
        details ??= [];
        if (reason is not null)
        {
            details["reason"] = reason.Length > 1000 ? reason[..1000] : reason;
        }

        Log?.Invoke($"{jobId}: {status}{(reason is null ? string.Empty : ": " + reason)}");
        try
        {
            await _jobs.UpdateAsync(jobId, status, details, cancellationToken: cancellationToken);
        }
        catch (JobRejectedException e)
        {
            Log?.Invoke($"{jobId}: the service did not take {status}: {e.Reason}");
        }

        DeleteLeftovers(jobId);
        Finished?.Invoke(jobId, status, reason);
    }

    /// <summary>statusDetails as AWS takes them: a map of strings (null values left out).</summary>
    private static JsonObject Details(params (string Key, string? Value)[] pairs)
    {
        var details = new JsonObject();
        foreach (var (key, value) in pairs)
        {
            if (value is not null)
            {
                details[key] = value;
            }
        }

        return details;
    }

    private void DeleteLeftovers(string jobId)
    {
        File.Delete(Path.Combine(_options.StateDirectory, jobId + ".img"));
        File.Delete(Path.Combine(_options.StateDirectory, jobId + ".img.part"));
    }

    private OtaState? ReadState()
    {
        var path = Path.Combine(_options.StateDirectory, StateFile);
        if (!File.Exists(path))
        {
            return null;
        }

        var json = JsonNode.Parse(File.ReadAllText(path));
        return json?["jobId"]?.GetValue<string>() is { } jobId
            ? new OtaState(jobId, json["version"]?.GetValue<string>(), json["previousVersion"]?.GetValue<string>() ?? string.Empty, json["sha256"]?.GetValue<string>() ?? string.Empty)
            : null;
    }

    /// <summary>Written (and flushed) before the image is handed over, so a restart in the middle still settles the job.</summary>
    private void WriteState(OtaState state)
    {
        var path = Path.Combine(_options.StateDirectory, StateFile);
        var json = new JsonObject { ["jobId"] = state.JobId, ["version"] = state.Version, ["previousVersion"] = state.PreviousVersion, ["sha256"] = state.Sha256 };
        using (var file = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write))
        {
            using (var writer = new Utf8JsonWriter(file))
            {
                json.WriteTo(writer);
            }

            file.Flush(flushToDisk: true);
        }

        File.Move(path + ".tmp", path, overwrite: true);
    }

    private void ClearState(string jobId)
    {
        if (ReadState()?.JobId == jobId)
        {
            File.Delete(Path.Combine(_options.StateDirectory, StateFile));
        }
    }

    private sealed record OtaState(string JobId, string? Version, string PreviousVersion, string Sha256);
}
