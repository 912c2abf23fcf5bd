package https_test

import (
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func runtimeRaw(b []byte) runtime.RawExtension { return runtime.RawExtension{Raw: b} }

func admissionRequest(ar admissionv1.AdmissionReview) cradmission.Request {
	return cradmission.Request{AdmissionRequest: *ar.Request}
}
