namespace AsrModule.Tests.FakeArm;

/// <summary>An ARM error answer ({"error":{"code","message"}}) thrown by a handler.</summary>
internal sealed class BadRequest(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
}
