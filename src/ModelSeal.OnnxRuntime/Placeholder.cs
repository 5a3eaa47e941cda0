namespace ModelSeal.OnnxRuntime;
