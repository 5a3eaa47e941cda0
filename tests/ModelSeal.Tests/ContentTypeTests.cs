namespace ModelSeal.Tests;

public sealed class ContentTypeTests
{
    [Theory]
    [InlineData("ch_ppocr_mobile_v2.0_cls_infer.onnx", ModelContentType.Onnx)]
    [InlineData("silero_vad.onnx", ModelContentType.Onnx)]
    [InlineData("melspectrogram.tflite", ModelContentType.TFLite)]
    public void Real_models_are_detected(string file, ModelContentType expected)
    {
        byte[] model = File.ReadAllBytes(RepoPaths.TestModels(file));
        Assert.Equal(expected, ModelContentTypeDetector.Detect(model.AsSpan(0, ModelContentTypeDetector.PrefixLength), model.Length));
    }

    [Theory]
    [InlineData(new byte[] { 0x08, 0x07 }, ModelContentType.Onnx)]
    [InlineData(new byte[] { 0x08, 0x07, 0x12, 0x03, (byte)'a', (byte)'b', (byte)'c', 0x3A, 0x80 }, ModelContentType.Onnx)]
    [InlineData(new byte[] { 0x08, 0x00 }, ModelContentType.Unknown)]             // ir_version 0
    [InlineData(new byte[] { 0x12, 0x01, 0x41 }, ModelContentType.Unknown)]       // does not start with ir_version
    [InlineData(new byte[] { 0x08, 0x07, 0x12, 0x7F }, ModelContentType.Unknown)] // length runs past the model
    [InlineData(new byte[] { 0x08, 0x07, 0x4A, 0x00 }, ModelContentType.Unknown)] // field 9 is not in ModelProto
    [InlineData(new byte[] { 0x08, 0x07, 0x3D, 0x00 }, ModelContentType.Unknown)] // graph with the wrong wire type
    [InlineData(new byte[] { 0, 0, 0, 0, (byte)'O', (byte)'R', (byte)'T', (byte)'M' }, ModelContentType.Ort)]
    [InlineData(new byte[] { 0, 0, 0, 0, (byte)'T', (byte)'F', (byte)'L', (byte)'3' }, ModelContentType.TFLite)]
    [InlineData(new byte[] { }, ModelContentType.Unknown)]
    [InlineData(new byte[] { 0x50, 0x4B, 0x03, 0x04 }, ModelContentType.Unknown)] // a zip file
    public void Detection_follows_the_documented_rules(byte[] prefix, ModelContentType expected)
    {
        Assert.Equal(expected, ModelContentTypeDetector.Detect(prefix, prefix.Length + (expected == ModelContentType.Onnx ? 1000 : 0)));
    }
}
