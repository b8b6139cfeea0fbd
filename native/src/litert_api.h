/* The parts of LiteRT's C API (libLiteRt.so, symbol version VERS_1.0) that libsame_edge uses,
 * declared from the API as documented in google-ai-edge/LiteRT litert/c/ (2.2 and later).
 * No LiteRT headers are shipped by Debian or the wheel, so the library carries its own
 * declarations; the struct sizes are asserted below as LiteRT asserts them. */
#ifndef SAME_EDGE_LITERT_API_H
#define SAME_EDGE_LITERT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct LiteRtEnvironmentT *LiteRtEnvironment;
typedef struct LiteRtModelT *LiteRtModel;
typedef struct LiteRtSignatureT *LiteRtSignature;
typedef struct LiteRtTensorT *LiteRtTensor;
typedef struct LiteRtOptionsT *LiteRtOptions;
typedef struct LiteRtOpaqueOptionsT *LiteRtOpaqueOptions;
typedef struct LiteRtCompiledModelT *LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT *LiteRtTensorBuffer;

typedef int LiteRtStatus; /* 0 is kLiteRtStatusOk */
typedef size_t LiteRtParamIndex;
typedef int LiteRtHwAcceleratorSet;
enum { kLiteRtHwAcceleratorCpu = 1 };

typedef enum { kLiteRtAnyTypeNone = 0, kLiteRtAnyTypeBool = 1, kLiteRtAnyTypeInt = 2 } LiteRtAnyType;
typedef struct {
  LiteRtAnyType type;
  union {
    bool bool_value;
    int64_t int_value;
    double real_value;
    const char *str_value;
    const void *ptr_value;
  };
} LiteRtAny;

enum { kLiteRtEnvOptionTagMinLoggerSeverity = 25 };
typedef struct {
  int tag; /* LiteRtEnvOptionTag: a C enum, int-sized */
  LiteRtAny value;
} LiteRtEnvOption;

#define LITERT_TENSOR_MAX_RANK 8
typedef struct {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[LITERT_TENSOR_MAX_RANK];
  uint32_t strides[LITERT_TENSOR_MAX_RANK];
} LiteRtLayout;

enum { kLiteRtElementTypeFloat32 = 1 };
typedef struct {
  int element_type; /* LiteRtElementType */
  LiteRtLayout layout;
} LiteRtRankedTensorType;

#define LITERT_HOST_MEMORY_BUFFER_ALIGNMENT 64
typedef void (*LiteRtHostMemoryDeallocator)(void *addr);

#if __SIZEOF_POINTER__ == 8
_Static_assert(sizeof(LiteRtAny) == 16, "LiteRtAny size");
_Static_assert(sizeof(LiteRtEnvOption) == 24, "LiteRtEnvOption size");
_Static_assert(sizeof(LiteRtLayout) == 68, "LiteRtLayout size");
_Static_assert(sizeof(LiteRtRankedTensorType) == 72, "LiteRtRankedTensorType size");
#endif

LiteRtStatus LiteRtCreateEnvironment(int num_options, const LiteRtEnvOption *options, LiteRtEnvironment *environment);
void LiteRtDestroyEnvironment(LiteRtEnvironment environment);

/* Since LiteRT 2.1.x the environment comes first; 2.0 and 2.1.0 had (filename, model). */
LiteRtStatus LiteRtCreateModelFromBuffer(LiteRtEnvironment environment, const void *buffer_addr, size_t buffer_size,
                                         LiteRtModel *model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetNumModelSignatures(LiteRtModel model, LiteRtParamIndex *num_signatures);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex signature_index, LiteRtSignature *signature);
LiteRtStatus LiteRtGetSignatureKey(LiteRtSignature signature, const char **signature_key);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature signature, LiteRtParamIndex *num_inputs);
LiteRtStatus LiteRtGetSignatureInputName(LiteRtSignature signature, LiteRtParamIndex input_idx, const char **input_name);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex input_idx,
                                                  LiteRtTensor *tensor);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature signature, LiteRtParamIndex *num_outputs);
LiteRtStatus LiteRtGetSignatureOutputName(LiteRtSignature signature, LiteRtParamIndex output_idx,
                                          const char **output_name);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex output_idx,
                                                   LiteRtTensor *tensor);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, LiteRtRankedTensorType *ranked_tensor_type);

LiteRtStatus LiteRtCreateOptions(LiteRtOptions *options);
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, LiteRtHwAcceleratorSet hardware_accelerators);
/* Ownership of opaque_options passes to options. */
LiteRtStatus LiteRtAddOpaqueOptions(LiteRtOptions options, LiteRtOpaqueOptions opaque_options);
LiteRtStatus LiteRtCreateOpaqueOptions(const char *payload_identifier, void *payload_data,
                                       void (*payload_destructor)(void *payload_data), LiteRtOpaqueOptions *options);
void LiteRtDestroyOpaqueOptions(LiteRtOpaqueOptions options);

LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment environment, LiteRtModel model,
                                       LiteRtOptions compilation_options, LiteRtCompiledModel *compiled_model);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled_model);
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled_model, LiteRtParamIndex signature_index,
                                    size_t num_input_buffers, LiteRtTensorBuffer *input_buffers,
                                    size_t num_output_buffers, LiteRtTensorBuffer *output_buffers);
/* Entry points whose presence tells the runtime's version (no version call is exported). Declared
 * weak so that an older runtime still loads and is refused with a message. Added in LiteRT 2.2.0: */
LiteRtStatus LiteRtGetCompiledModelEnvironment(LiteRtCompiledModel compiled_model, LiteRtEnvironment *environment)
    __attribute__((weak));
/* Added in LiteRT 2.3.0 (absent from 2.2.0's libLiteRt.so): the library's minimum runtime. */
LiteRtStatus LiteRtCompiledModelIsNonCpuFullyAccelerated(LiteRtCompiledModel compiled_model, bool *fully_accelerated)
    __attribute__((weak));

LiteRtStatus LiteRtCreateTensorBufferFromHostMemory(const LiteRtRankedTensorType *tensor_type, void *host_buffer_addr,
                                                    size_t host_buffer_size, LiteRtHostMemoryDeallocator deallocator,
                                                    LiteRtTensorBuffer *buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);

#endif
