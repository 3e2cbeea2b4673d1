using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nfm.Descriptions;

/// <summary>The one JSON convention for every description record: camelCase names, enums as strings.</summary>
public static class Json
{
    /// <summary>Serializer options shared by every description.</summary>
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>Serialise a description.</summary>
    public static string Write<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <summary>Read a description back; throws <see cref="InvalidDataException"/> naming the type on malformed input.</summary>
    public static T Read<T>(string json)
    {
        try { return JsonSerializer.Deserialize<T>(json, Options) ?? throw new InvalidDataException($"empty JSON for {typeof(T).Name}"); }
        catch (JsonException e) { throw new InvalidDataException($"malformed {typeof(T).Name} description: {e.Message}", e); }
    }
}
