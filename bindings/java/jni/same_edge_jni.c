/* JNI shim of the Java binding (ai.sameedge.Native): one native per libsame_edge call, conversions
 * only. The Java callers check handles, nulls, lengths, offsets and buffer kinds before calling; a
 * failed C call throws ai.sameedge.SameEdgeException with the status and se_last_error() (as UTF-8
 * bytes, which Java decodes: JNI's modified UTF-8 is not UTF-8).
 *
 * Arrays are copied through one temporary native buffer per call (Get/SetFloatArrayRegion):
 * GetPrimitiveArrayCritical would stop the garbage collector for a whole graph run and forbids the
 * calls into Java that the log and progress callbacks make. Direct buffers are read and written
 * where they are (GetDirectBufferAddress): no copy, no allocation. */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "same_edge.h"

static JavaVM *g_vm;
static jclass g_exception;          /* ai.sameedge.SameEdgeException */
static jmethodID g_from_native;     /* static SameEdgeException fromNative(int, byte[]) */
static jclass g_native;             /* ai.sameedge.Native */
static jmethodID g_dispatch_log;    /* static void dispatchLog(LogListener, int, byte[]) */
static jfieldID g_fd_field;         /* java.io.FileDescriptor's int: "fd" (OpenJDK), "descriptor" (Android) */
static jmethodID g_get_as_boolean;  /* java.util.function.BooleanSupplier.getAsBoolean() */
static jmethodID g_on_progress;     /* ai.sameedge.ProgressListener.onProgress(long, long) */

static jclass global_class(JNIEnv *env, const char *name) {
  jclass local = (*env)->FindClass(env, name);
  if (!local) return NULL;
  jclass global = (jclass)(*env)->NewGlobalRef(env, local);
  (*env)->DeleteLocalRef(env, local);
  return global;
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
  (void)reserved;
  JNIEnv *env;
  if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  g_vm = vm;
  if (!(g_exception = global_class(env, "ai/sameedge/SameEdgeException")) ||
      !(g_from_native = (*env)->GetStaticMethodID(env, g_exception, "fromNative",
                                                  "(I[B)Lai/sameedge/SameEdgeException;")) ||
      !(g_native = global_class(env, "ai/sameedge/Native")) ||
      !(g_dispatch_log = (*env)->GetStaticMethodID(env, g_native, "dispatchLog", "(Lai/sameedge/LogListener;I[B)V")))
    return JNI_ERR;
  jclass fd_class = (*env)->FindClass(env, "java/io/FileDescriptor");
  if (!fd_class) return JNI_ERR;
  g_fd_field = (*env)->GetFieldID(env, fd_class, "fd", "I");
  if (!g_fd_field) {
    (*env)->ExceptionClear(env); /* NoSuchFieldError: Android names it "descriptor" */
    if (!(g_fd_field = (*env)->GetFieldID(env, fd_class, "descriptor", "I"))) return JNI_ERR;
  }
  jclass supplier = (*env)->FindClass(env, "java/util/function/BooleanSupplier");
  jclass progress = supplier ? (*env)->FindClass(env, "ai/sameedge/ProgressListener") : NULL;
  if (!progress || !(g_get_as_boolean = (*env)->GetMethodID(env, supplier, "getAsBoolean", "()Z")) ||
      !(g_on_progress = (*env)->GetMethodID(env, progress, "onProgress", "(JJ)V")))
    return JNI_ERR;
  return JNI_VERSION_1_6;
}

static jbyteArray bytes_of(JNIEnv *env, const char *s) {
  jsize n = (jsize)strlen(s);
  jbyteArray bytes = (*env)->NewByteArray(env, n);
  if (bytes) (*env)->SetByteArrayRegion(env, bytes, 0, n, (const jbyte *)s);
  return bytes;
}

/* Throws SameEdgeException(status, message) unless an exception is already pending (a listener's,
 * which then propagates instead). */
static void throw_message(JNIEnv *env, int status, const char *message) {
  if ((*env)->ExceptionCheck(env)) return;
  jbyteArray bytes = bytes_of(env, message);
  if (!bytes) return; /* OutOfMemoryError pending */
  jobject e = (*env)->CallStaticObjectMethod(env, g_exception, g_from_native, (jint)status, bytes);
  if (e) (*env)->Throw(env, (jthrowable)e);
}

static void throw_status(JNIEnv *env, se_status st) { throw_message(env, (int)st, se_last_error()); }

/* ---------- versions, descriptors, references ---------- */

JNIEXPORT jstring JNICALL Java_ai_sameedge_Native_version(JNIEnv *env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, se_version());
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_versionNumber(JNIEnv *env, jclass cls) {
  (void)env, (void)cls;
  return se_version_number();
}

JNIEXPORT jstring JNICALL Java_ai_sameedge_Native_litertVersion(JNIEnv *env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, se_litert_version());
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_fdOf(JNIEnv *env, jclass cls, jobject descriptor) {
  (void)cls;
  return (*env)->GetIntField(env, descriptor, g_fd_field);
}

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_newGlobalRef(JNIEnv *env, jclass cls, jobject object) {
  (void)cls;
  return (jlong)(intptr_t)(*env)->NewGlobalRef(env, object);
}

JNIEXPORT void JNICALL Java_ai_sameedge_Native_deleteGlobalRef(JNIEnv *env, jclass cls, jlong ref) {
  (void)cls;
  (*env)->DeleteGlobalRef(env, (jobject)(intptr_t)ref);
}

/* ---------- models ---------- */

/* The library's log callback: user_data is the LogListener's global reference. It runs on the thread
 * of a call this shim made, so that thread is attached. */
static void on_log(se_log_level level, const char *message, void *user_data) {
  JNIEnv *env;
  if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK || (*env)->ExceptionCheck(env)) return;
  jbyteArray bytes = bytes_of(env, message);
  if (bytes) (*env)->CallStaticVoidMethod(env, g_native, g_dispatch_log, (jobject)user_data, (jint)level, bytes);
  (*env)->ExceptionClear(env); /* dispatchLog catches what the listener throws; this is for OutOfMemoryError */
  if (bytes) (*env)->DeleteLocalRef(env, bytes);
}

/* se_model_options from Native's (int[] {threads, sides, skipSha256, logLevel, litertLogLevel},
 * byte[] weightCacheDir or null, long logRef). *cache must be released with release_options. */
static void get_options(JNIEnv *env, jintArray values, jbyteArray cache_dir, jlong log_ref, se_model_options *o,
                        jbyte **cache) {
  jint v[5];
  (*env)->GetIntArrayRegion(env, values, 0, 5, v);
  se_model_options_init(o);
  o->threads = v[0];
  o->sides = v[1];
  o->skip_sha256 = v[2];
  o->log_level = (se_log_level)v[3];
  o->litert_log_level = (se_log_level)v[4];
  if (log_ref) {
    o->log_callback = on_log;
    o->log_user_data = (void *)(intptr_t)log_ref;
  }
  *cache = cache_dir ? (*env)->GetByteArrayElements(env, cache_dir, NULL) : NULL;
  o->weight_cache_dir = (const char *)*cache;
}

static jlong opened(JNIEnv *env, jbyteArray cache_dir, jbyte *cache, se_status st, se_model *model) {
  if (cache) (*env)->ReleaseByteArrayElements(env, cache_dir, cache, JNI_ABORT);
  if (st != SE_OK) throw_status(env, st);
  return (jlong)(intptr_t)model;
}

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_open(JNIEnv *env, jclass cls, jbyteArray dir, jintArray values,
                                                      jbyteArray cache_dir, jlong log_ref) {
  (void)cls;
  se_model_options o;
  jbyte *cache, *path = (*env)->GetByteArrayElements(env, dir, NULL);
  if (!path) return 0;
  get_options(env, values, cache_dir, log_ref, &o, &cache);
  se_model *model = NULL;
  se_status st = se_model_open((const char *)path, &o, &model);
  (*env)->ReleaseByteArrayElements(env, dir, path, JNI_ABORT);
  return opened(env, cache_dir, cache, st, model);
}

/* A direct buffer's bytes from offset: NULL and 0 for a null buffer. */
static const void *direct_bytes(JNIEnv *env, jobject buffer, jlong offset) {
  if (!buffer) return NULL;
  const char *base = (const char *)(*env)->GetDirectBufferAddress(env, buffer);
  return base ? base + offset : NULL;
}

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_openMemory(JNIEnv *env, jclass cls, jobject manifest, jlong m_off,
                                                            jlong m_len, jobject encoder, jlong e_off, jlong e_len,
                                                            jobject decoder, jlong d_off, jlong d_len,
                                                            jintArray values, jbyteArray cache_dir, jlong log_ref) {
  (void)cls;
  const void *m = direct_bytes(env, manifest, m_off), *e = direct_bytes(env, encoder, e_off),
             *d = direct_bytes(env, decoder, d_off);
  if (!m || (encoder && !e) || (decoder && !d)) {
    throw_message(env, SE_ERR_ARGUMENT, "a model buffer is not a direct buffer");
    return 0;
  }
  se_model_options o;
  jbyte *cache;
  get_options(env, values, cache_dir, log_ref, &o, &cache);
  se_model *model = NULL;
  se_status st = se_model_open_memory(m, (size_t)m_len, e, (size_t)e_len, d, (size_t)d_len, &o, &model);
  return opened(env, cache_dir, cache, st, model);
}

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_openFd(JNIEnv *env, jclass cls, jlongArray ranges, jintArray values,
                                                        jbyteArray cache_dir, jlong log_ref) {
  (void)cls;
  jlong r[9];
  (*env)->GetLongArrayRegion(env, ranges, 0, 9, r);
  se_file_range files[3];
  for (int i = 0; i < 3; i++) files[i] = (se_file_range){(int)r[3 * i], r[3 * i + 1], r[3 * i + 2]};
  se_model_options o;
  jbyte *cache;
  get_options(env, values, cache_dir, log_ref, &o, &cache);
  se_model *model = NULL;
  se_status st = se_model_open_fd(files[0], files[1], files[2], &o, &model);
  return opened(env, cache_dir, cache, st, model);
}

JNIEXPORT void JNICALL Java_ai_sameedge_Native_modelClose(JNIEnv *env, jclass cls, jlong model) {
  (void)env, (void)cls;
  se_model_close((se_model *)(intptr_t)model);
}

JNIEXPORT void JNICALL Java_ai_sameedge_Native_modelFacts(JNIEnv *env, jclass cls, jlong handle, jintArray facts) {
  (void)cls;
  const se_model *m = (const se_model *)(intptr_t)handle;
  jint f[9] = {se_model_sample_rate(m),
               se_model_channels(m),
               se_model_latent_dim(m),
               se_model_hop(m),
               se_model_frames_per_chunk(m),
               se_model_encoder_latency_samples(m),
               se_model_decoder_latency_samples(m),
               se_model_threads(m),
               se_model_sides(m)};
  (*env)->SetIntArrayRegion(env, facts, 0, 9, f);
}

JNIEXPORT jbyteArray JNICALL Java_ai_sameedge_Native_modelId(JNIEnv *env, jclass cls, jlong model) {
  (void)cls;
  return bytes_of(env, se_model_id((const se_model *)(intptr_t)model));
}

JNIEXPORT jbyteArray JNICALL Java_ai_sameedge_Native_modelPrecision(JNIEnv *env, jclass cls, jlong model) {
  (void)cls;
  return bytes_of(env, se_model_precision((const se_model *)(intptr_t)model));
}

/* ---------- streams ---------- */

#define STREAM(handle) ((se_stream *)(intptr_t)(handle))

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_streamCreate(JNIEnv *env, jclass cls, jlong model, jboolean decoder,
                                                              jint largest_window) {
  (void)cls;
  se_stream *stream = NULL;
  se_model *m = (se_model *)(intptr_t)model;
  se_status st = decoder ? se_decoder_create(m, largest_window, &stream) : se_encoder_create(m, largest_window, &stream);
  if (st != SE_OK) throw_status(env, st);
  return (jlong)(intptr_t)stream;
}

JNIEXPORT void JNICALL Java_ai_sameedge_Native_streamFree(JNIEnv *env, jclass cls, jlong stream) {
  (void)env, (void)cls;
  se_stream_free(STREAM(stream));
}

JNIEXPORT void JNICALL Java_ai_sameedge_Native_streamReset(JNIEnv *env, jclass cls, jlong stream) {
  (void)cls;
  se_status st = se_stream_reset(STREAM(stream));
  if (st != SE_OK) throw_status(env, st);
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_streamInputRows(JNIEnv *env, jclass cls, jlong stream) {
  (void)env, (void)cls;
  return se_stream_input_rows(STREAM(stream));
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_streamOutputRows(JNIEnv *env, jclass cls, jlong stream) {
  (void)env, (void)cls;
  return se_stream_output_rows(STREAM(stream));
}

static jlong size_or_minus_one(size_t n) { return n == SIZE_MAX || n > INT64_MAX ? -1 : (jlong)n; }

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_pushOutputSize(JNIEnv *env, jclass cls, jlong stream, jlong frames) {
  (void)env, (void)cls;
  return size_or_minus_one(se_stream_push_output_size(STREAM(stream), (size_t)frames));
}

JNIEXPORT jlong JNICALL Java_ai_sameedge_Native_flushOutputSize(JNIEnv *env, jclass cls, jlong stream) {
  (void)env, (void)cls;
  return size_or_minus_one(se_stream_flush_output_size(STREAM(stream)));
}

/* A temporary buffer of in_floats then out_cols * out_rows floats, out_cols being at most the columns
 * the call writes (`want`, exact by the library's contract) or the caller's capacity if smaller (the
 * library then refuses with SE_ERR_BUFFER_TOO_SMALL before writing). */
static float *scratch(JNIEnv *env, size_t in_floats, size_t want, jint capacity, size_t out_rows, size_t *out_cols) {
  if (want == SIZE_MAX) {
    throw_message(env, SE_ERR_ARGUMENT, "the input, or its output, would not fit in memory");
    return NULL;
  }
  *out_cols = want < (size_t)capacity ? want : (size_t)capacity;
  float *buf = malloc(sizeof(float) * (in_floats + *out_cols * out_rows) + 1);
  if (!buf) throw_message(env, SE_ERR_NO_MEMORY, "out of memory for the JNI copy of a Java array");
  return buf;
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_pushArray(JNIEnv *env, jclass cls, jlong handle, jfloatArray in,
                                                          jint in_offset, jint frames, jfloatArray out,
                                                          jint out_offset, jint capacity) {
  (void)cls;
  se_stream *s = STREAM(handle);
  size_t in_floats = (size_t)frames * (size_t)se_stream_input_rows(s), rows = (size_t)se_stream_output_rows(s), cols;
  float *buf = scratch(env, in_floats, se_stream_push_output_size(s, (size_t)frames), capacity, rows, &cols);
  if (!buf) return 0;
  (*env)->GetFloatArrayRegion(env, in, in_offset, (jsize)in_floats, buf);
  size_t n = 0;
  se_status st = se_stream_push(s, buf, (size_t)frames, SE_INTERLEAVED, buf + in_floats, cols, &n);
  if (st == SE_OK) (*env)->SetFloatArrayRegion(env, out, out_offset, (jsize)(n * rows), buf + in_floats);
  else throw_status(env, st);
  free(buf);
  return (jint)n;
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_pushBuffer(JNIEnv *env, jclass cls, jlong handle, jobject in,
                                                           jint in_offset, jint frames, jobject out, jint out_offset,
                                                           jint capacity) {
  (void)cls;
  float *src = (*env)->GetDirectBufferAddress(env, in), *dst = (*env)->GetDirectBufferAddress(env, out);
  if (!src || !dst) {
    throw_message(env, SE_ERR_ARGUMENT, "a stream buffer is not a direct buffer");
    return 0;
  }
  size_t n = 0;
  se_status st = se_stream_push(STREAM(handle), src + in_offset, (size_t)frames, SE_INTERLEAVED, dst + out_offset,
                                (size_t)capacity, &n);
  if (st != SE_OK) throw_status(env, st);
  return (jint)n;
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_flushArray(JNIEnv *env, jclass cls, jlong handle, jfloatArray out,
                                                           jint out_offset, jint capacity) {
  (void)cls;
  se_stream *s = STREAM(handle);
  size_t rows = (size_t)se_stream_output_rows(s), cols;
  float *buf = scratch(env, 0, se_stream_flush_output_size(s), capacity, rows, &cols);
  if (!buf) return 0;
  size_t n = 0;
  se_status st = se_stream_flush(s, SE_INTERLEAVED, buf, cols, &n);
  if (st == SE_OK) (*env)->SetFloatArrayRegion(env, out, out_offset, (jsize)(n * rows), buf);
  else throw_status(env, st);
  free(buf);
  return (jint)n;
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_flushBuffer(JNIEnv *env, jclass cls, jlong handle, jobject out,
                                                            jint out_offset, jint capacity) {
  (void)cls;
  float *dst = (*env)->GetDirectBufferAddress(env, out);
  if (!dst) {
    throw_message(env, SE_ERR_ARGUMENT, "a stream buffer is not a direct buffer");
    return 0;
  }
  size_t n = 0;
  se_status st = se_stream_flush(STREAM(handle), SE_INTERLEAVED, dst + out_offset, (size_t)capacity, &n);
  if (st != SE_OK) throw_status(env, st);
  return (jint)n;
}

/* ---------- offline ---------- */

typedef struct run_context {
  JNIEnv *env;
  jobject abort_when; /* BooleanSupplier or NULL */
  jobject progress;   /* ProgressListener or NULL */
} run_context;

/* Stops the call once a listener has thrown (its exception then propagates) or abortWhen says so. */
static int run_abort(void *user_data) {
  run_context *c = user_data;
  JNIEnv *env = c->env;
  if ((*env)->ExceptionCheck(env)) return 1;
  if (!c->abort_when) return 0;
  jboolean stop = (*env)->CallBooleanMethod(env, c->abort_when, g_get_as_boolean);
  return (*env)->ExceptionCheck(env) || stop;
}

static void run_progress(size_t done, size_t total, void *user_data) {
  run_context *c = user_data;
  if (c->progress && !(*c->env)->ExceptionCheck(c->env))
    (*c->env)->CallVoidMethod(c->env, c->progress, g_on_progress, (jlong)done, (jlong)total);
}

JNIEXPORT jint JNICALL Java_ai_sameedge_Native_offline(JNIEnv *env, jclass cls, jlong handle, jboolean decode,
                                                        jfloatArray in, jint frames, jfloatArray out, jint capacity,
                                                        jint largest_window, jobject abort_when, jobject progress) {
  (void)cls;
  se_model *m = (se_model *)(intptr_t)handle;
  size_t in_rows = (size_t)(decode ? se_model_latent_dim(m) : se_model_channels(m));
  size_t out_rows = (size_t)(decode ? se_model_channels(m) : se_model_latent_dim(m));
  size_t in_floats = (size_t)frames * in_rows, cols;
  size_t want = decode ? se_decode_output_size(m, (size_t)frames) : se_encode_output_size(m, (size_t)frames);
  float *buf = scratch(env, in_floats, want, capacity, out_rows, &cols);
  if (!buf) return 0;
  (*env)->GetFloatArrayRegion(env, in, 0, (jsize)in_floats, buf);
  run_context context = {env, abort_when, progress};
  se_run_options run = {.struct_size = sizeof run, .largest_window = largest_window, .user_data = &context};
  if (abort_when || progress) run.abort_callback = run_abort;
  if (progress) run.progress_callback = run_progress;
  size_t n = 0;
  se_status st = (decode ? se_decode : se_encode)(m, buf, (size_t)frames, SE_INTERLEAVED, buf + in_floats, cols, &n,
                                                  &run);
  if (st == SE_OK && !(*env)->ExceptionCheck(env))
    (*env)->SetFloatArrayRegion(env, out, 0, (jsize)(n * out_rows), buf + in_floats);
  else if (st != SE_OK)
    throw_status(env, st);
  free(buf);
  return (jint)n;
}
