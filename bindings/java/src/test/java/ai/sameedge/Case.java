package ai.sameedge;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.stream.Stream;

/**
 * One model and the Python runtime's outputs on it, written by tests/test_java.py into the directory named by
 * the system property {@code sameedge.data}: one subdirectory per model with case.properties (the model
 * directory, its facts, the push sizes) and raw little-endian float32 files, all interleaved
 * ({@code [frames][rows]}): audio.f32 (the input), latents.f32 and decoded.f32 (Codec.encode, Codec.decode of
 * those latents), stream_latents.f32 and stream_decoded.f32 (Python streams pushed the same sizes, then flushed).
 */
final class Case {
    /** Threads on both sides: outputs are bit-identical at equal thread counts. */
    static final int THREADS = 2;

    private static List<Case> all;

    final String name;
    final Path modelDir;
    final Properties facts = new Properties();
    final float[] audio;
    final float[] latents;
    final float[] decoded;
    final float[] streamLatents;
    final float[] streamDecoded;
    final int[] encoderPieces;
    final int[] decoderPieces;
    final int channels;
    final int latentDim;
    final int hop;

    private Case(Path dir) throws IOException {
        name = dir.getFileName().toString();
        try (var in = Files.newInputStream(dir.resolve("case.properties"))) {
            facts.load(in);
        }
        modelDir = Paths.get(facts.getProperty("model_dir"));
        audio = floats(dir.resolve("audio.f32"));
        latents = floats(dir.resolve("latents.f32"));
        decoded = floats(dir.resolve("decoded.f32"));
        streamLatents = floats(dir.resolve("stream_latents.f32"));
        streamDecoded = floats(dir.resolve("stream_decoded.f32"));
        encoderPieces = ints(facts.getProperty("encoder_pieces"));
        decoderPieces = ints(facts.getProperty("decoder_pieces"));
        channels = integer("channels");
        latentDim = integer("latent_dim");
        hop = integer("hop");
    }

    /** Every model of the data directory, in name order (loaded once per JVM). */
    static synchronized Stream<Case> all() {
        if (all == null) {
            String data = System.getProperty("sameedge.data");
            if (data == null) {
                throw new IllegalStateException("-Dsameedge.data=DIR is not set (tests/test_java.py writes DIR)");
            }
            List<Case> cases = new ArrayList<>();
            try (Stream<Path> dirs = Files.list(Paths.get(data))) {
                for (Path dir : dirs.filter(Files::isDirectory).sorted().toArray(Path[]::new)) {
                    cases.add(new Case(dir));
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            all = cases;
        }
        return all.stream();
    }

    /** The first model of the data directory, for tests that need one model only. */
    static Case first() {
        return all().findFirst().orElseThrow();
    }

    int integer(String key) {
        return Integer.parseInt(facts.getProperty(key));
    }

    Model open() {
        return Model.open(modelDir.toString(), options());
    }

    static ModelOptions options() {
        return new ModelOptions().threads(THREADS);
    }

    /** A copy of frames [start, start + count) of interleaved data with `rows` floats per frame. */
    static float[] frames(float[] data, int rows, int start, int count) {
        return Arrays.copyOfRange(data, start * rows, (start + count) * rows);
    }

    @Override
    public String toString() {
        return name;
    }

    private static float[] floats(Path path) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(out);
        return out;
    }

    private static int[] ints(String csv) {
        return Arrays.stream(csv.split(",")).mapToInt(Integer::parseInt).toArray();
    }
}
