using Trellis.Core.Errors;

namespace Trellis.Jobs;

/// <summary>Job templates: a document and settings that CreateJob with a jobTemplateArn starts from.</summary>
public sealed partial class JobService
{
    /// <summary>A template from a document, or from an existing job (<paramref name="jobArn"/>: its document and settings).</summary>
    public Result<JobTemplateRecord> CreateTemplate(string templateId, string description, string? document, string? documentSource, string? jobArn, JobSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (documentSource is not null)
        {
            var read = ReadSource(documentSource);
            if (!read.IsSuccess)
            {
                return read.Error!;
            }

            document = read.Value;
        }

        if (jobArn is not null)
        {
            if (_store.GetJob(jobArn[(jobArn.LastIndexOf('/') + 1)..]) is not { } job)
            {
                return new TrellisError.NotFound($"Job '{jobArn}' does not exist.");
            }

            document ??= job.SourceDocument;
            settings = Merge(settings, job.Settings) with { Scheduling = null, DocumentParameters = null, TemplateArn = null };
        }

        if (document is null)
        {
            return new TrellisError.InvalidRequest("A job template needs a 'document' or a 'jobArn' to copy one from.");
        }

        if ((ValidateDocument(document) ?? ValidateSettings(settings)) is { } invalid)
        {
            return invalid;
        }

        var template = new JobTemplateRecord
        {
            TemplateId = templateId,
            Arn = _targets.Arn("jobtemplate/" + templateId),
            Description = description,
            Document = document,
            Settings = settings,
            CreatedMs = NowMs,
        };
        return _store.InsertTemplate(template)
            ? template
            : new TrellisError.Conflict($"A job template with id '{templateId}' already exists.");
    }

    public Result<JobTemplateRecord> DescribeTemplate(string templateId) =>
        _store.GetTemplate(templateId) is { } template ? template : new TrellisError.NotFound($"Job template '{templateId}' does not exist.");

    public (IReadOnlyList<JobTemplateRecord> Templates, string? NextToken) ListTemplates(string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var page = Paged(_store.ListTemplates(Decode(nextToken), size + 1), size, t => t.TemplateId);
        return (page.Value.Items, page.Value.NextToken);
    }

    public TrellisError? DeleteTemplate(string templateId) =>
        _store.DeleteTemplate(templateId) ? null : new TrellisError.NotFound($"Job template '{templateId}' does not exist.");
}
